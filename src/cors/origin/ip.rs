//! IP address hosts as browsers write them in an `Origin` (the WHATWG URL host parser and
//! serializer): an IPv4 address in dotted decimal, however the URL spelled it (`127.1`,
//! `0x7f.0.0.1`, `2130706433`, `127.0.0.1.` are all `127.0.0.1`), and an IPv6 address
//! in lowercase hex with the first longest run of two or more zero pieces written `::`
//! and no embedded IPv4 (`[0:0:0:0:0:0:0:1]` is `[::1]`, `[::ffff:1.2.3.4]` is
//! `[::ffff:102:304]`). An origin lists a host in that form, or no browser's `Origin`
//! could match it.

use std::fmt::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

/// What a host that browsers read as an IP address becomes in their `Origin`:
/// `None` when it is a name, `Some(Err(()))` when browsers refuse the URL (a name ending
/// in a number that is not an address, e.g. `example.123` or `1.2.3.256`), and
/// `Some(Ok(form))` with the serialized address (`[…]` for IPv6).
pub fn serialized(host: &str) -> Option<Result<String, ()>> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return Some(
            inner
                .parse::<Ipv6Addr>()
                .map(|ip| ipv6(&ip))
                .map_err(|_| ()),
        );
    }
    if !ends_in_a_number(host) {
        return None;
    }
    Some(ipv4(host).map(|ip| ip.to_string()).ok_or(()))
}

/// The WHATWG "ends in a number" test: the last label (a trailing empty one left out) is
/// all digits, or a number in the IPv4 parser's syntax (`0x` hex).
fn ends_in_a_number(host: &str) -> bool {
    let mut labels: Vec<&str> = host.split('.').collect();
    if labels.last() == Some(&"") {
        if labels.len() == 1 {
            return false;
        }
        labels.pop();
    }
    let last = labels.last().copied().unwrap_or("");
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) || number(last).is_some()
}

/// One part of an IPv4 address: decimal, `0x` hex (empty after the prefix: 0), or
/// octal with a leading `0`.
fn number(part: &str) -> Option<u64> {
    if part.is_empty() {
        return None;
    }
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if part.len() > 1 && part.starts_with('0') {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
    if digits.is_empty() {
        return Some(0);
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Longer than any part of an address can be: not an address.
    u64::from_str_radix(digits, radix)
        .ok()
        .filter(|n| *n <= u64::from(u32::MAX))
}

/// The WHATWG IPv4 parser: one to four parts, the last filling the bytes left.
fn ipv4(host: &str) -> Option<Ipv4Addr> {
    let mut parts: Vec<&str> = host.split('.').collect();
    if parts.last() == Some(&"") && parts.len() > 1 {
        parts.pop();
    }
    if parts.len() > 4 {
        return None;
    }
    let numbers = parts
        .iter()
        .map(|p| number(p))
        .collect::<Option<Vec<u64>>>()?;
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|n| *n > 255) || *last >= 256u64.pow(5 - numbers.len() as u32) {
        return None;
    }
    let mut address = *last;
    for (i, n) in leading.iter().enumerate() {
        address += n * 256u64.pow(3 - i as u32);
    }
    u32::try_from(address).ok().map(Ipv4Addr::from)
}

/// The WHATWG IPv6 serializer, in brackets.
fn ipv6(ip: &Ipv6Addr) -> String {
    let pieces = ip.segments();
    // The first longest run of zero pieces, if longer than one.
    let (mut best, mut best_len) = (None, 1);
    let mut i = 0;
    while i < pieces.len() {
        let run = pieces[i..].iter().take_while(|p| **p == 0).count();
        if run > best_len {
            (best, best_len) = (Some(i), run);
        }
        i += run.max(1);
    }
    let mut out = String::from("[");
    let mut i = 0;
    while i < pieces.len() {
        if Some(i) == best {
            out.push_str(if i == 0 { "::" } else { ":" });
            i += best_len;
            continue;
        }
        let _ = write!(out, "{:x}", pieces[i]);
        if i + 1 < pieces.len() {
            out.push(':');
        }
        i += 1;
    }
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    use super::serialized;

    fn form(host: &str) -> Option<Result<String, ()>> {
        serialized(host)
    }

    #[test]
    fn names_are_not_addresses() {
        for name in [
            "localhost",
            "app.example.com",
            "xn--bcher-kva.example",
            "a1",
            "1a.example",
            "example.com.",
        ] {
            assert_eq!(form(name), None, "{name}");
        }
    }

    #[test]
    fn ipv4_as_browsers_write_it() {
        for (host, expect) in [
            ("127.0.0.1", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("127.0.0.1.", "127.0.0.1"),
            ("10.0x", "10.0.0.0"),
            ("192.168.010.1", "192.168.8.1"),
        ] {
            assert_eq!(form(host), Some(Ok(expect.to_string())), "{host}");
        }
        for refused in [
            "1.2.3.256",
            "example.123",
            "1.2.3.4.5",
            "09.1.1.1",
            "4294967296",
            "1..2",
        ] {
            assert_eq!(form(refused), Some(Err(())), "{refused}");
        }
    }

    #[test]
    fn ipv6_as_browsers_write_it() {
        for (host, expect) in [
            ("[::1]", "[::1]"),
            ("[0:0:0:0:0:0:0:1]", "[::1]"),
            ("[2001:DB8::1]", "[2001:db8::1]"),
            ("[2001:db8:0:0:1:0:0:1]", "[2001:db8::1:0:0:1]"),
            ("[2001:db8:0:1:1:1:1:1]", "[2001:db8:0:1:1:1:1:1]"),
            ("[::ffff:1.2.3.4]", "[::ffff:102:304]"),
            ("[::]", "[::]"),
            ("[1::]", "[1::]"),
            ("[0001:0:0:0:0:0:0:0]", "[1::]"),
        ] {
            assert_eq!(form(host), Some(Ok(expect.to_string())), "{host}");
        }
        assert_eq!(form("[nope]"), Some(Err(())));
    }
}

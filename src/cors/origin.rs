//! Origins (`scheme://host[:port]`, RFC 6454): the syntax `cors.allowed_origins` accepts,
//! and the comparison of a request's `Origin` with an allowed one.
//!
//! Two origins are the same when their schemes and hosts are equal ignoring ASCII case
//! and their ports are equal once a scheme's default port is filled in
//! (`HTTPS://App.Example.com:443` is `https://app.example.com`). Browsers send the
//! serialized form (lowercase, default port left out), so a configured entry is kept in
//! that form and most requests match it byte for byte.

use std::net::Ipv6Addr;

/// An origin split into its parts, borrowed from the text it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    scheme: &'a str,
    host: &'a str,
    /// The port as written, if any.
    port: Option<u16>,
}

impl<'a> Origin<'a> {
    /// Parses `scheme://host[:port]`: a URI scheme, a DNS name, IPv4 address or bracketed
    /// IPv6 address (ASCII: IDNs in their `xn--` form), a port from 1 to 65535, nothing
    /// after it (not even `/`). `Err` says what is wrong, for the config error.
    pub fn parse(text: &'a str) -> Result<Origin<'a>, &'static str> {
        if text == "null" {
            return Err(
                "`null` is the origin of sandboxed frames and local files, which any \
                        site can produce: it is never allowed",
            );
        }
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("not an origin: write scheme://host[:port], e.g. https://app.example.com")?;
        let mut chars = scheme.chars();
        let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err("not a URI scheme before `://`");
        }
        if rest.contains(['/', '?', '#']) {
            return Err("an origin has no path, query or fragment (not even a trailing `/`)");
        }
        if rest.contains('@') {
            return Err("an origin has no user information (`user@`)");
        }
        if rest.contains('*') {
            return Err("wildcards are not supported: list each origin, or use [\"*\"] alone");
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (ip, after) = bracketed
                .split_once(']')
                .ok_or("an IPv6 host needs its closing `]`")?;
            if ip.parse::<Ipv6Addr>().is_err() {
                return Err("not an IPv6 address between `[` and `]`");
            }
            let host = &rest[..ip.len() + 2];
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or("junk after the IPv6 host")?),
                ),
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if !host.starts_with('[') {
            let host_ok = !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
            if !host_ok {
                return Err(
                    "not a host name or address (ASCII letters, digits, `-`, `.`; \
                            an international name in its xn-- form)",
                );
            }
        }
        let port = match port {
            None => None,
            Some(p) => {
                let digits = !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit());
                match p.parse::<u16>() {
                    Ok(n) if digits && n > 0 => Some(n),
                    _ => return Err("the port must be a number from 1 to 65535"),
                }
            }
        };
        Ok(Origin { scheme, host, port })
    }

    /// The port, the scheme's default filled in (`None`: no port and no known default).
    fn effective_port(&self) -> Option<u16> {
        self.port.or_else(|| default_port(self.scheme))
    }

    /// Whether `self` and `other` are the same origin (see the module docs).
    pub fn same(&self, other: &Origin<'_>) -> bool {
        self.scheme.eq_ignore_ascii_case(other.scheme)
            && self.host.eq_ignore_ascii_case(other.host)
            && self.effective_port() == other.effective_port()
    }

    /// Whether this is already the serialized form (see [`Origin::serialized`]): then
    /// it is the same as another serialized origin only when the texts are equal.
    pub fn is_serialized(&self) -> bool {
        let lower = |s: &str| !s.bytes().any(|b| b.is_ascii_uppercase());
        lower(self.scheme)
            && lower(self.host)
            && (self.port.is_none() || self.port != default_port(self.scheme))
    }

    /// The serialized form browsers send: scheme and host in lowercase, the port only
    /// when it is not the scheme's default.
    pub fn serialized(&self) -> String {
        let mut out = format!(
            "{}://{}",
            self.scheme.to_ascii_lowercase(),
            self.host.to_ascii_lowercase()
        );
        if let Some(port) = self.port.filter(|p| Some(*p) != default_port(self.scheme)) {
            out.push(':');
            out.push_str(&port.to_string());
        }
        out
    }
}

/// The default port of the schemes browsers use for pages.
fn default_port(scheme: &str) -> Option<u16> {
    if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("wss") {
        Some(443)
    } else if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("ws") {
        Some(80)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Origin;

    fn same(a: &str, b: &str) -> bool {
        Origin::parse(a).unwrap().same(&Origin::parse(b).unwrap())
    }

    #[test]
    fn accepts_origins() {
        for ok in [
            "https://app.example.com",
            "http://127.0.0.1:8000",
            "http://[::1]:3000",
            "https://[2001:db8::1]",
            "capacitor://localhost",
            "chrome-extension://abcdefghijklmnop",
            "https://xn--bcher-kva.example",
            "http://localhost:65535",
        ] {
            assert!(Origin::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_is_not_an_origin() {
        for bad in [
            "",
            "null",
            "*",
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?q",
            "https://*.example.com",
            "https://user@app.example.com",
            "https://",
            "https://app.example.com:",
            "https://app.example.com:0",
            "https://app.example.com:65536",
            "https://app.example.com:+80",
            "https://app.example.com:80:80",
            "https://[::1",
            "https://[nope]",
            "https://[::1]x",
            "https://bücher.example",
            "https://a b",
            "1http://a",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn compares_case_insensitively_with_default_ports() {
        assert!(same("https://App.Example.COM", "https://app.example.com"));
        assert!(same(
            "HTTPS://app.example.com:443",
            "https://app.example.com"
        ));
        assert!(same("http://a.example:80", "http://a.example"));
        assert!(same("http://[::1]:8080", "http://[::1]:8080"));
        assert!(!same("http://app.example.com", "https://app.example.com"));
        assert!(!same(
            "https://app.example.com:8443",
            "https://app.example.com"
        ));
        assert!(!same(
            "https://app.example.com:80",
            "http://app.example.com"
        ));
        assert!(!same("https://a.example.com", "https://b.example.com"));
        assert!(!same("https://example.com", "https://app.example.com"));
    }

    #[test]
    fn serializes_as_browsers_do() {
        let s = |t: &str| Origin::parse(t).unwrap().serialized();
        assert_eq!(s("HTTPS://App.Example.com:443"), "https://app.example.com");
        assert_eq!(s("http://Localhost:8080"), "http://localhost:8080");
        assert_eq!(s("http://[::1]:80"), "http://[::1]");
        assert_eq!(s("capacitor://localhost"), "capacitor://localhost");
        let serialized = |t: &str| Origin::parse(t).unwrap().is_serialized();
        assert!(serialized("https://app.example.com"));
        assert!(serialized("http://localhost:8080"));
        assert!(!serialized("https://App.example.com"));
        assert!(!serialized("https://app.example.com:443"));
    }
}

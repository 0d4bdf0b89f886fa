//! `application/x-www-form-urlencoded` decoding of a query string, strictly: a name or
//! value that does not decode to valid UTF-8 is reported, never replaced.

use std::borrow::Cow;

/// A query parameter whose decoded bytes are not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Splits a raw query into decoded `(name, value)` pairs, in order.
///
/// `+` and `%20` both decode to a space, hex digits may be either case, and names are
/// decoded like values. A `%` not followed by two hex digits is kept literally, as the
/// WHATWG URL standard does. Empty segments (`a=1&&b=2`) are skipped.
pub fn pairs(
    query: &str,
) -> impl Iterator<Item = Result<(Cow<'_, str>, Cow<'_, str>), InvalidUtf8>> {
    raw_pairs(query).map(|(name, value)| Ok((decode(name)?, decode(value)?)))
}

/// Splits a raw query into still-encoded `(name, value)` pairs, skipping empty segments.
pub fn raw_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|segment| segment.split_once('=').unwrap_or((segment, "")))
}

/// Decodes one form-urlencoded component.
pub fn decode(raw: &str) -> Result<Cow<'_, str>, InvalidUtf8> {
    let bytes = raw.as_bytes();
    let Some(first) = bytes.iter().position(|&b| b == b'%' || b == b'+') else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..first]);
    let mut i = first;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            _ => {
                // Copy the run up to the next escape in one go.
                let run = bytes[i..]
                    .iter()
                    .position(|&b| b == b'%' || b == b'+')
                    .unwrap_or(bytes.len() - i);
                out.extend_from_slice(&bytes[i..i + run]);
                i += run;
                continue;
            }
        }
        i += 1;
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| InvalidUtf8)
}

fn hex(b: Option<&u8>) -> Option<u8> {
    match *b? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Appends `s` percent-encoded: RFC 3986 unreserved characters stay, everything else
/// becomes `%XX` with upper-case hex. One spelling per string, so equal values give
/// equal canonical queries.
pub fn encode_into(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let unreserved = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Copy a run of characters that stay as they are in one go. A run is ASCII, so
        // it starts and ends on character boundaries.
        let run = bytes[i..]
            .iter()
            .position(|b| !unreserved(b))
            .unwrap_or(bytes.len() - i);
        if run > 0 {
            out.push_str(&s[i..i + run]);
            i += run;
        }
        if let Some(&b) = bytes.get(i) {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(q: &str) -> Vec<(String, String)> {
        pairs(q)
            .map(|p| p.map(|(n, v)| (n.into_owned(), v.into_owned())))
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn spaces_and_commas_decode_alike() {
        assert_eq!(decode("a+b").unwrap(), "a b");
        assert_eq!(decode("a%20b").unwrap(), "a b");
        assert_eq!(decode("a%2Cb").unwrap(), "a,b");
        assert_eq!(decode("a%2cb").unwrap(), "a,b");
    }

    #[test]
    fn names_are_decoded() {
        assert_eq!(all("user%5Fid=x"), vec![("user_id".into(), "x".into())]);
    }

    #[test]
    fn malformed_escapes_stay_literal() {
        assert_eq!(decode("100%").unwrap(), "100%");
        assert_eq!(decode("%zz").unwrap(), "%zz");
        assert_eq!(decode("%4").unwrap(), "%4");
        assert_eq!(decode("%41%").unwrap(), "A%");
    }

    #[test]
    fn invalid_utf8_is_reported() {
        assert_eq!(decode("%FF"), Err(InvalidUtf8));
        assert_eq!(decode("%C3"), Err(InvalidUtf8));
        assert_eq!(decode("%C3%A9").unwrap(), "é");
    }

    #[test]
    fn empty_segments_and_missing_values() {
        assert_eq!(
            all("&a&&b=&c=1"),
            vec![
                ("a".into(), "".into()),
                ("b".into(), "".into()),
                ("c".into(), "1".into())
            ]
        );
    }

    #[test]
    fn encode_round_trips() {
        let mut s = String::new();
        encode_into(&mut s, "{\"a\": [1,2]} é~");
        assert_eq!(s, "%7B%22a%22%3A%20%5B1%2C2%5D%7D%20%C3%A9~");
        assert_eq!(decode(&s).unwrap(), "{\"a\": [1,2]} é~");
    }
}

//! The canonical path and query, stored decoded.
//!
//! Normalization writes every value percent-encoded (`form::encode_into`: the unreserved
//! characters as they are, every other byte as `%XX` in upper-case hex) between a few
//! literal separators. A typical `context` is JSON, whose punctuation takes three bytes
//! each that way; a key keeps the decoded bytes instead, and the forwarded request is
//! written back from them on a miss, byte for byte what normalization produced.
//!
//! The packed form is a bijection of canonical strings:
//! - an unreserved byte (`A-Z a-z 0-9 - . _ ~`) stands for itself;
//! - a literal separator (`/ ? & = ,`) is stored as one of the bytes `0xF5..=0xF9`, which
//!   never occur in UTF-8, so never in a decoded value;
//! - any other byte is a decoded `%XX`.
//!
//! A string that is not in that canonical form (a literal byte outside those sets, a `%`
//! not followed by two upper-case hex digits, an escaped unreserved byte, or an escape
//! decoding to `0xF5..`) is not packed ([`pack`] returns `None`) and the key keeps it as
//! it is, so every string round-trips and two keys are equal exactly when their canonical
//! requests are.

/// The literal separators a canonical path and query holds, and the byte each is stored as.
const SEPARATORS: [(u8, u8); 5] = [
    (b'/', 0xF5),
    (b'?', 0xF6),
    (b'&', 0xF7),
    (b'=', 0xF8),
    (b',', 0xF9),
];

/// The first byte of the range separators are stored in; bytes from here on never come
/// from a decoded escape.
const CODES: u8 = 0xF5;

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn code_of(b: u8) -> Option<u8> {
    SEPARATORS.iter().find(|(s, _)| *s == b).map(|(_, c)| *c)
}

fn separator_of(code: u8) -> Option<u8> {
    SEPARATORS.iter().find(|(_, c)| *c == code).map(|(s, _)| *s)
}

fn upper_hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `pq` decoded into `out` (appended), or `None` (and `out` as it was) when `pq` is not in
/// canonical form.
pub fn pack_into(pq: &str, out: &mut Vec<u8>) -> Option<()> {
    let start = out.len();
    let bytes = pq.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let packed = if unreserved(b) {
            Some(b)
        } else if b == b'%' {
            let decoded = bytes
                .get(i + 1)
                .and_then(|&h| upper_hex(h))
                .zip(bytes.get(i + 2).and_then(|&l| upper_hex(l)))
                .map(|(h, l)| h << 4 | l)
                .filter(|&d| !unreserved(d) && d < CODES);
            i += 2;
            decoded
        } else {
            code_of(b)
        };
        match packed {
            Some(p) => out.push(p),
            None => {
                out.truncate(start);
                return None;
            }
        }
        i += 1;
    }
    Some(())
}

/// The length [`unpack_into`] writes for `packed`.
pub fn unpacked_len(packed: &[u8]) -> usize {
    packed
        .iter()
        .map(|&b| {
            if unreserved(b) || separator_of(b).is_some() {
                1
            } else {
                3
            }
        })
        .sum()
}

/// Writes the canonical string `packed` came from ([`pack_into`]).
pub fn unpack_into(packed: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.reserve(unpacked_len(packed));
    for &b in packed {
        if unreserved(b) {
            out.push(b);
        } else if let Some(s) = separator_of(b) {
            out.push(s);
        } else {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        }
    }
}

/// [`unpack_into`] as a string. The output is ASCII.
pub fn unpack(packed: &[u8]) -> String {
    let mut out = Vec::new();
    unpack_into(packed, &mut out);
    // Every byte written above is ASCII; a failure here would be a bug, answered with an
    // empty path rather than a panic.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pack(pq: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        pack_into(pq, &mut out).map(|()| out)
    }

    #[test]
    fn a_typical_query_shrinks_and_comes_back() {
        let pq = "/v1/vardata?context=%7B%22plan%22%3A%22pro%22%2C%22n%22%3A1%7D&user_id=u%C3%A9";
        let packed = pack(pq).expect("canonical");
        assert_eq!(
            packed.len(),
            "/v1/vardata?context={\"plan\":\"pro\",\"n\":1}&user_id=ué".len()
        );
        assert_eq!(unpack(&packed), pq);
        assert_eq!(unpacked_len(&packed), pq.len());
    }

    #[test]
    fn non_canonical_strings_are_not_packed() {
        for pq in [
            "/a b",  // a literal space
            "/a%2",  // a cut escape
            "/a%zz", // not hex
            "/a%7b", // lower-case hex
            "/a%41", // an escaped unreserved byte
            "/a%F5", // decodes into the separators' codes
            "/a;b",  // a literal byte outside the separators
            "/é",    // a literal non-ASCII byte
        ] {
            let mut out = b"kept".to_vec();
            assert!(pack_into(pq, &mut out).is_none(), "{pq:?}");
            assert_eq!(out, b"kept", "{pq:?}: output left as it was");
        }
    }

    /// What normalization writes: values through `form::encode_into` between separators.
    fn canonical() -> impl Strategy<Value = String> {
        let value = any::<String>();
        (
            proptest::collection::vec(("[a-z_]{1,8}", value), 0..4),
            prop_oneof![Just("/v1/vardata"), Just("/sdk/v2/flags")],
        )
            .prop_map(|(params, path)| {
                let mut s = String::from(path);
                for (at, (name, v)) in params.iter().enumerate() {
                    s.push(if at == 0 { '?' } else { '&' });
                    s.push_str(name);
                    s.push('=');
                    crate::normalize::form::encode_into(&mut s, v);
                    s.push(',');
                    crate::normalize::form::encode_into(&mut s, v);
                }
                s
            })
    }

    proptest! {
        #[test]
        fn every_canonical_string_packs_and_round_trips(pq in canonical()) {
            let packed = pack(&pq).expect("canonical strings pack");
            prop_assert!(packed.len() <= pq.len());
            prop_assert_eq!(unpack(&packed), pq);
        }

        #[test]
        fn whatever_packs_round_trips(pq in "[/?&=,%0-9A-Fa-z~ {}\"é\u{1F600}-]{0,40}") {
            if let Some(packed) = pack(&pq) {
                prop_assert_eq!(unpack(&packed), pq);
            }
        }
    }
}

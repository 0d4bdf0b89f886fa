//! Canonical JSON text: what a value below the user's lookup levels becomes in the key.
//!
//! Every JSON parser reads `"\u0070ro"` and `"pro"`, `"\/"` and `"/"`, `"\u00e9"` and
//! `"é"` as the same string, and so does every evaluation engine (it parses a property,
//! object-valued ones included, before it compares or stringifies it). So strings are
//! written one way, the way serde_json and `JSON.stringify` write them: `"` and `\`
//! escaped, control characters as `\b \f \n \r \t` or `\u00xx` (lower-case hex), everything
//! else, `/` and non-ASCII included, as raw UTF-8. A surrogate pair escape becomes its
//! character; a lone surrogate is not a string Rust can hold, and makes the JSON invalid.
//!
//! Everything else is kept as sent (number spelling, member order, nulls, array order);
//! only insignificant whitespace goes. A string without a backslash is already canonical
//! (valid JSON has no raw control characters) and is copied as it is.

/// A string that cannot be made canonical: a `\u` escape naming a lone UTF-16
/// surrogate (no Unicode string holds one), or text that is not valid JSON after all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidString;

/// Writes valid JSON text `raw` canonically into `out`: whitespace outside strings
/// dropped, every string (member names included, at every depth) in canonical form.
///
/// `raw` must be valid JSON as far as serde_json's syntax check goes (a `RawValue`):
/// the only thing left to reject is a lone surrogate escape.
pub fn canonical_value_into(out: &mut String, raw: &str) -> Result<(), InvalidString> {
    let bytes = raw.as_bytes();
    // `raw[start..i]` is pending: canonical already, copied in one go.
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                let open = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\\' {
                    i += 1;
                }
                if bytes.get(i) == Some(&b'\\') {
                    out.push_str(&raw[start..open]);
                    i = unescape_string(out, raw, open)?;
                    start = i;
                } else {
                    i += 1;
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push_str(&raw[start..i]);
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&raw[start..]);
    Ok(())
}

/// Writes `s` as a canonical JSON string.
pub fn push_string(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        if b < 0x20 || b == b'"' || b == b'\\' {
            out.push_str(&s[start..i]);
            push_escaped(out, b as char);
            start = i + 1;
        }
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Writes the string literal opening at `raw[open]` canonically; returns the index just
/// past its closing quote.
fn unescape_string(out: &mut String, raw: &str, open: usize) -> Result<usize, InvalidString> {
    let bytes = raw.as_bytes();
    out.push('"');
    let mut i = open + 1;
    let mut start = i;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                out.push_str(&raw[start..i]);
                out.push('"');
                return Ok(i + 1);
            }
            b'\\' => {
                out.push_str(&raw[start..i]);
                let escape = bytes.get(i + 1).copied().ok_or(InvalidString)?;
                i += 2;
                match escape {
                    // Kept: the canonical spelling of these characters.
                    b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't' => {
                        out.push('\\');
                        out.push(escape as char);
                    }
                    b'/' => out.push('/'),
                    b'u' => {
                        let c = decode_unicode_escape(bytes, &mut i)?;
                        push_char(out, c);
                    }
                    // serde_json has rejected every other escape already.
                    _ => return Err(InvalidString),
                }
                start = i;
            }
            _ => i += 1,
        }
    }
    // serde_json has checked that the string closes.
    Err(InvalidString)
}

/// Decodes the `XXXX` of a `\uXXXX` at `bytes[*i..]`, and the low half after it when it
/// is a high surrogate; advances `*i` past what it read.
fn decode_unicode_escape(bytes: &[u8], i: &mut usize) -> Result<char, InvalidString> {
    let high = hex4(bytes, *i)?;
    *i += 4;
    let code = match high {
        0xD800..=0xDBFF => {
            if bytes.get(*i..*i + 2) != Some(b"\\u") {
                return Err(InvalidString);
            }
            let low = hex4(bytes, *i + 2)?;
            if !(0xDC00..=0xDFFF).contains(&low) {
                return Err(InvalidString);
            }
            *i += 6;
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        }
        0xDC00..=0xDFFF => return Err(InvalidString),
        code => code,
    };
    char::from_u32(code).ok_or(InvalidString)
}

fn hex4(bytes: &[u8], at: usize) -> Result<u32, InvalidString> {
    let digits = bytes.get(at..at + 4).ok_or(InvalidString)?;
    let mut value = 0;
    for &d in digits {
        let v = (d as char).to_digit(16).ok_or(InvalidString)?;
        value = value * 16 + v;
    }
    Ok(value)
}

/// Writes one decoded character of a string canonically.
fn push_char(out: &mut String, c: char) {
    if (c as u32) < 0x20 || c == '"' || c == '\\' {
        push_escaped(out, c);
    } else {
        out.push(c);
    }
}

/// The canonical escape of a character that must be escaped.
fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let b = c as u32;
            out.push_str("\\u00");
            out.push(HEX[(b >> 4) as usize & 15] as char);
            out.push(HEX[b as usize & 15] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str) -> Result<String, InvalidString> {
        let mut out = String::new();
        canonical_value_into(&mut out, raw)?;
        Ok(out)
    }

    #[track_caller]
    fn same(spellings: &[&str], canonical: &str) {
        for s in spellings {
            assert_eq!(canon(s).as_deref(), Ok(canonical), "{s}");
        }
        assert_eq!(canon(canonical).as_deref(), Ok(canonical), "fixed point");
    }

    #[test]
    fn unicode_escapes_of_plain_characters_decode() {
        same(&[r#""\u0070ro""#, r#""\u0070\u0072\u006F""#], r#""pro""#);
        same(&[r#""\u00e9""#, r#""\u00E9""#], "\"\u{e9}\"");
        same(&[r#""\u20ac\u2028""#], "\"\u{20ac}\u{2028}\"");
        same(&[r#""\u007f""#], "\"\u{7f}\"");
    }

    #[test]
    fn solidus_is_written_raw() {
        same(&[r#""a\/b""#, r#""a\u002fb""#, r#""a\u002Fb""#], r#""a/b""#);
    }

    #[test]
    fn surrogate_pairs_decode_to_their_character() {
        same(
            &[
                r#""\ud83d\ude00""#,
                r#""\uD83D\uDE00""#,
                r#""\ud83D\uDe00""#,
            ],
            "\"\u{1f600}\"",
        );
    }

    #[test]
    fn lone_surrogates_are_invalid() {
        for raw in [
            r#""\ud800""#,
            r#""\udc00""#,
            r#""\ud83d x""#,
            r#""\ud83d\n""#,
            r#""\ud83d\u0041""#,
            r#""\ude00\ud83d""#,
            r#"{"\ud800":1}"#,
            r#"[1,{"a":["\udfff"]}]"#,
        ] {
            assert_eq!(canon(raw), Err(InvalidString), "{raw}");
        }
    }

    #[test]
    fn quote_and_backslash_stay_escaped() {
        same(&[r#""\u0022\u005c""#, r#""\u0022\u005C""#], r#""\"\\""#);
    }

    #[test]
    fn control_characters_take_their_shortest_escape() {
        same(&[r#""\u0008\u000c\u000A\u000d\u0009""#], r#""\b\f\n\r\t""#);
        same(&[r#""\u001F\u0000""#], r#""\u001f\u0000""#);
    }

    #[test]
    fn member_names_at_every_depth_are_strings_too() {
        same(
            &[r#"{"\u0061":[{"\/":"\u00e9"}], "b" : { "c\u0064" : null }}"#],
            "{\"a\":[{\"/\":\"\u{e9}\"}],\"b\":{\"cd\":null}}",
        );
    }

    #[test]
    fn everything_but_strings_and_whitespace_is_kept() {
        same(
            &[r#"{ "b" : 1.0 , "a" : [ 2 , 1e2 , -0 , null ] }"#],
            r#"{"b":1.0,"a":[2,1e2,-0,null]}"#,
        );
        // Whitespace inside a string is part of it.
        same(&[r#"[ " a\u0020b " ]"#], r#"[" a b "]"#);
    }

    #[test]
    fn push_string_writes_the_canonical_form() {
        let mut out = String::new();
        push_string(&mut out, "a\"\\\u{8}\u{1}/\u{e9}\u{7f}");
        assert_eq!(out, "\"a\\\"\\\\\\b\\u0001/\u{e9}\u{7f}\"");
        assert_eq!(
            out,
            serde_json::to_string("a\"\\\u{8}\u{1}/\u{e9}\u{7f}").unwrap()
        );
    }
}

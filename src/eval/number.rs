//! JavaScript's `Number(string)`, the parser behind `less` … `greater or equal`.
//!
//! The JS engine never falls back to string comparison for these operators: whatever does
//! not parse is NaN, and NaN compares false. So the exact grammar decides answers: `""` and
//! `"  "` are 0, surrounding whitespace is ignored, `0x1A`/`0o17`/`0b11` parse, `Infinity`
//! parses (spelled exactly so), and `1_000`, `inf`, `-0x1` and `1e` are NaN.

/// JS `Number(s)` for a string.
pub fn js_number(s: &str) -> f64 {
    let s = s.trim_matches(is_js_whitespace);
    if s.is_empty() {
        return 0.0;
    }
    let bytes = s.as_bytes();
    if bytes.len() > 2 && bytes[0] == b'0' {
        let radix_bits = match bytes[1] {
            b'x' | b'X' => Some(4),
            b'o' | b'O' => Some(3),
            b'b' | b'B' => Some(1),
            _ => None,
        };
        if let Some(bits) = radix_bits {
            return non_decimal(&bytes[2..], bits);
        }
    }
    let (sign, unsigned) = match bytes[0] {
        b'-' => (-1.0, &s[1..]),
        b'+' => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    if unsigned == "Infinity" {
        return sign * f64::INFINITY;
    }
    if !is_decimal_literal(unsigned.as_bytes()) {
        return f64::NAN;
    }
    // The grammar is checked above; Rust's parser is correctly rounded, as JS requires.
    unsigned.parse::<f64>().map_or(f64::NAN, |f| sign * f)
}

/// JS WhiteSpace and LineTerminator: not the same set as Unicode White_Space (JS adds
/// U+FEFF and leaves out U+0085 and U+001C..U+001F).
fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | ' '
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
            | '\u{feff}'
    )
}

/// `digits [. digits?] [exp]` or `. digits [exp]`, with `exp` = `e|E [+|-] digits`.
fn is_decimal_literal(b: &[u8]) -> bool {
    let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
    let mut i = int_len;
    let mut frac_len = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_len;
    }
    if int_len + frac_len == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_len = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_len == 0 {
            return false;
        }
        i += exp_len;
    }
    i == b.len()
}

/// Digits of a `0x`/`0o`/`0b` literal (no sign allowed), rounded to the nearest double.
fn non_decimal(digits: &[u8], bits: u32) -> f64 {
    let radix = 1u32 << bits;
    // Keep at least 64 significant bits in `mant`; bits below it only matter as a
    // "sticky" flag for round-half-to-even, so they are folded into bit 0.
    let mut mant: u128 = 0;
    let mut shift: i32 = 0;
    let mut sticky = false;
    for &c in digits {
        let Some(d) = (c as char).to_digit(radix) else {
            return f64::NAN;
        };
        if mant >> (128 - bits) == 0 {
            mant = (mant << bits) | u128::from(d);
        } else {
            shift += bits as i32;
            sticky |= d != 0;
        }
    }
    if sticky {
        mant |= 1;
    }
    let value = mant as f64;
    if shift == 0 || value == 0.0 {
        value
    } else if shift > 1023 {
        f64::INFINITY
    } else {
        value * f64::from_bits(((1023 + shift) as u64) << 52)
    }
}

#[cfg(test)]
mod tests {
    use super::js_number;

    fn same(a: f64, b: f64) -> bool {
        (a.is_nan() && b.is_nan()) || a == b
    }

    #[test]
    fn decimal_forms() {
        for (s, want) in [
            ("1", 1.0),
            ("-1.5", -1.5),
            ("+2", 2.0),
            ("1.", 1.0),
            (".5", 0.5),
            ("1.e3", 1000.0),
            ("1E3", 1000.0),
            ("1e-3", 0.001),
            ("007", 7.0),
            ("1e400", f64::INFINITY),
            ("-1e400", f64::NEG_INFINITY),
            ("0.1", 0.1),
            ("9007199254740993", 9_007_199_254_740_992.0),
        ] {
            assert!(
                same(js_number(s), want),
                "{s:?} → {} (want {want})",
                js_number(s)
            );
        }
    }

    #[test]
    fn whitespace_and_empty() {
        assert_eq!(js_number(""), 0.0);
        assert_eq!(js_number(" "), 0.0);
        assert_eq!(js_number("\t\n 12 \u{a0}\u{feff}\u{3000}"), 12.0);
        assert!(js_number("\u{85}1").is_nan(), "NEL is not JS whitespace");
    }

    #[test]
    fn infinity_spellings() {
        assert_eq!(js_number("Infinity"), f64::INFINITY);
        assert_eq!(js_number("-Infinity"), f64::NEG_INFINITY);
        assert_eq!(js_number("+Infinity"), f64::INFINITY);
        for s in ["infinity", "inf", "INFINITY", "NaN", "nan"] {
            assert!(js_number(s).is_nan(), "{s}");
        }
    }

    #[test]
    fn radix_prefixes() {
        assert_eq!(js_number("0x1A"), 26.0);
        assert_eq!(js_number("0X1a"), 26.0);
        assert_eq!(js_number("0o17"), 15.0);
        assert_eq!(js_number("0b11"), 3.0);
        assert_eq!(js_number(" 0x10 "), 16.0);
        assert_eq!(js_number("0x20000000000001"), 9_007_199_254_740_992.0);
        assert_eq!(js_number("0x20000000000003"), 9_007_199_254_740_996.0);
        assert_eq!(
            js_number("0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF"),
            2f64.powi(144)
        );
        assert_eq!(js_number(&format!("0x{}", "f".repeat(300))), f64::INFINITY);
        for s in [
            "0x", "0b", "0o", "-0x10", "+0x10", "0x1g", "0b2", "0o8", "0x1.5",
        ] {
            assert!(js_number(s).is_nan(), "{s}");
        }
    }

    #[test]
    fn not_numbers() {
        for s in [
            "1_000", "abc", "1e", "1e+", ".", "-", "+", "e5", "1.2.3", "--1", "1 2", "0x 1", "true",
        ] {
            assert!(js_number(s).is_nan(), "{s}");
        }
    }
}

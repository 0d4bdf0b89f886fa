//! `regex match`: JavaScript's `new RegExp(v).exec(prop)`, compiled once per filter value.
//!
//! The JS engine searches (no anchoring), with no flags, so the pattern is in JS's
//! *non-Unicode* mode: lookaround, backreferences and named groups work, `\d`/`\w` are
//! ASCII, Annex B leniencies apply (`a{`, `]`, `\8`), and both pattern and subject are
//! sequences of UTF-16 code units (`^.$` does not match `🚀`, which is two units).
//! [`regress`] implements ECMAScript regexes; this module feeds it code units and works
//! around two places where its non-Unicode parsing differs from JS (see [`js_units`]).

use std::fmt;

use regress::{Flags, Regex};

/// A compiled JS regex.
pub struct JsRegex {
    regex: Regex,
}

impl fmt::Debug for JsRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JsRegex")
    }
}

impl JsRegex {
    /// Compiles `pattern` as `new RegExp(pattern)` would, or returns the error JS would
    /// throw (as text).
    pub fn new(pattern: &str) -> Result<JsRegex, String> {
        let units = js_units(pattern);
        // A parser bug must cost one condition, not the process: a panic becomes an error.
        let compiled = std::panic::catch_unwind(|| {
            Regex::from_unicode(units.iter().copied(), Flags::default())
        });
        match compiled {
            Ok(Ok(regex)) => Ok(JsRegex { regex }),
            Ok(Err(e)) => Err(format!("Invalid regular expression: /{pattern}/: {e}")),
            Err(_) => Err(format!(
                "Invalid regular expression: /{pattern}/: unsupported"
            )),
        }
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        // Below U+10000 a code point is one code unit, so UTF-8 matching means the same
        // thing and needs no copy. Supplementary characters (4-byte UTF-8) are split
        // into their surrogate pairs, as JS sees them.
        if text.bytes().all(|b| b < 0xf0) {
            self.regex.find(text).is_some()
        } else {
            let units: Vec<u16> = text.encode_utf16().collect();
            self.regex.find_from_ucs2(&units, 0).next().is_some()
        }
    }
}

/// The pattern as the UTF-16 code units JS parses, with two rewrites that make regress
/// read it as JS does in non-Unicode mode:
/// - `\uXXXX` naming a surrogate becomes that code unit itself. regress would otherwise
///   join `\uD83D\uDE80` into one code point (which never equals a single code unit), and
///   after a high-surrogate escape it drops the `\u` of a following non-surrogate escape.
/// - `\u{` becomes `u{`: braced code points exist only in Unicode mode; without it, JS
///   reads `\u` as the letter `u` (so `\u{3}` is `uuu`).
///
/// Escaped backslashes are skipped as pairs, so `\\u{` is left alone.
fn js_units(pattern: &str) -> Vec<u32> {
    let units: Vec<u16> = pattern.encode_utf16().collect();
    let mut out = Vec::with_capacity(units.len());
    let mut i = 0;
    while i < units.len() {
        if units[i] != u16::from(b'\\') || i + 1 == units.len() {
            out.push(u32::from(units[i]));
            i += 1;
            continue;
        }
        let next = units[i + 1];
        if next == u16::from(b'u') {
            if units.get(i + 2) == Some(&u16::from(b'{')) {
                out.push(u32::from(b'u'));
                i += 2;
                continue;
            }
            if let Some(unit) =
                hex4(units.get(i + 2..i + 6)).filter(|u| (0xd800..=0xdfff).contains(u))
            {
                out.push(unit);
                i += 6;
                continue;
            }
        }
        out.push(u32::from(units[i]));
        out.push(u32::from(next));
        i += 2;
    }
    out
}

/// Four hex digits as a number.
fn hex4(units: Option<&[u16]>) -> Option<u32> {
    units?.iter().try_fold(0u32, |acc, &u| {
        Some(acc * 16 + char::from_u32(u32::from(u))?.to_digit(16)?)
    })
}

#[cfg(test)]
mod tests {
    use super::JsRegex;

    fn m(pattern: &str, text: &str) -> bool {
        JsRegex::new(pattern)
            .unwrap_or_else(|e| panic!("{e}"))
            .is_match(text)
    }

    /// Each case checked against `new RegExp(p).exec(s)` in Node 20.
    #[test]
    fn matches_like_javascript() {
        let cases: &[(&str, &str, bool)] = &[
            ("^.$", "🚀", false),
            ("^..$", "🚀", true),
            ("^.$", "é", true),
            ("b", "abc", true),
            ("^b", "abc", false),
            (r"\d", "٣", false),
            (r"\w", "é", false),
            ("(?<=a)b", "ab", true),
            ("(?<!a)b", "ab", false),
            (r"(a)\1", "aa", true),
            (r"(a)\1", "ab", false),
            ("a{", "a{", true),
            ("a{1", "a{1", true),
            ("x{2}", "xx", true),
            (r"\u{61}", "a", false),
            (r"\u{3}", "uuu", true),
            ("^[🚀]$", "🚀", false),
            ("^[🚀]{2}$", "🚀", true),
            (r"\uD83D\uDE80", "🚀", true),
            (r"^\uD83D\uDE80$", "🚀", true),
            ("]", "]", true),
            ("}", "}", true),
            (r"\s", "\u{a0}", true),
            (r"\s", "\u{feff}", true),
            (r"\s", "\u{85}", false),
            (r"(?<y>\d{4})", "in 2024", true),
            (r"\k<y>", "k<y>", true),
            ("^$", "", true),
            ("", "x", true),
            (r"\cJ", "\n", true),
            (r"[\b]", "\u{8}", true),
            (r"\0", "\0", true),
            (r"\8", "8", true),
            ("a|", "zzz", true),
            (r"\p{L}", "p{L}", true),
            ("🚀", "a🚀b", true),
            ("^[^a]$", "🚀", false),
            (r"\x4", "x4", true),
            (r"\\u{2}", r"\uu", true),
        ];
        for &(pattern, text, want) in cases {
            assert_eq!(m(pattern, text), want, "/{pattern}/ on {text:?}");
        }
    }

    #[test]
    fn invalid_patterns_are_errors() {
        for p in [
            "(",
            "[",
            "a**",
            "\\",
            "?",
            "(?<a>x)(?<a>y)",
            "x{2,1}",
            "[b-a]",
            "(?<=",
            r"\k<zz>(?<a>.)",
        ] {
            assert!(JsRegex::new(p).is_err(), "{p}");
        }
    }
}

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
    matcher: Matcher,
}

enum Matcher {
    /// A pattern that is only literal text, possibly anchored (`^beta`, `@corp\.com$`):
    /// matched with plain string search, which is much faster than running a regex.
    Literal {
        text: String,
        start: bool,
        end: bool,
    },
    Regex(Regex),
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
        if let Some((text, start, end)) = literal(pattern) {
            return Ok(JsRegex {
                matcher: Matcher::Literal { text, start, end },
            });
        }
        let units = js_units(pattern);
        // A parser bug must cost one condition, not the process: a panic becomes an error.
        let compiled = std::panic::catch_unwind(|| {
            Regex::from_unicode(units.iter().copied(), Flags::default())
        });
        match compiled {
            Ok(Ok(regex)) => Ok(JsRegex {
                matcher: Matcher::Regex(regex),
            }),
            Ok(Err(e)) => Err(format!("Invalid regular expression: /{pattern}/: {e}")),
            Err(_) => Err(format!(
                "Invalid regular expression: /{pattern}/: unsupported"
            )),
        }
    }

    /// Whether the pattern matches anywhere in `text`.
    pub fn is_match(&self, text: &str) -> bool {
        match &self.matcher {
            // Substring tests on valid strings agree for code points and code units.
            Matcher::Literal {
                text: lit,
                start,
                end,
            } => match (start, end) {
                (true, true) => text == lit,
                (true, false) => text.starts_with(lit.as_str()),
                (false, true) => text.ends_with(lit.as_str()),
                (false, false) => text.contains(lit.as_str()),
            },
            // Below U+10000 a code point is one code unit, so UTF-8 matching means the same
            // thing and needs no copy. Supplementary characters (4-byte UTF-8) are split
            // into their surrogate pairs, as JS sees them.
            Matcher::Regex(regex) if text.bytes().all(|b| b < 0xf0) => regex.find(text).is_some(),
            Matcher::Regex(regex) => {
                let units: Vec<u16> = text.encode_utf16().collect();
                regex.find_from_ucs2(&units, 0).next().is_some()
            }
        }
    }
}

/// `[^]` literal text `[$]` with no other syntax: the text (escaped syntax characters
/// unescaped), and whether it is anchored at the start and at the end. `None` for
/// anything else, including Annex B's lone `{`, `}` and `]`, which are left to regress.
fn literal(pattern: &str) -> Option<(String, bool, bool)> {
    let (start, body) = match pattern.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let mut text = String::with_capacity(body.len());
    let mut end = false;
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if "^$\\.*+?()[]{}|/-".contains(e) => text.push(e),
                _ => return None,
            },
            '$' if chars.peek().is_none() => end = true,
            '^' | '$' | '.' | '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' => {
                return None;
            }
            c => text.push(c),
        }
    }
    Some((text, start, end))
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
            // Literal patterns take the string-search path.
            (r"@corp\.com$", "a@corp.com", true),
            (r"@corp\.com$", "a@corp.com.evil", false),
            (r"@corp\.com$", "a@corpxcom", false),
            ("^beta", "beta-1", true),
            ("^beta", "a beta", false),
            ("^exact$", "exact", true),
            ("^exact$", "exact!", false),
            (r"a\-b\/c\\d", r"xa-b/c\dx", true),
            ("🚀x", "a🚀x", true),
            ("^", "", true),
            ("$", "x", true),
        ];
        for &(pattern, text, want) in cases {
            assert_eq!(m(pattern, text), want, "/{pattern}/ on {text:?}");
        }
    }

    /// More syntax, each case checked against `new RegExp(p).exec(s)` in Node 20.
    #[test]
    fn more_syntax_like_javascript() {
        let cases: &[(&str, &str, bool)] = &[
            ("\\bfoo\\b", "a foo b", true),
            ("\\bfoo\\b", "afoob", false),
            ("\\Boo", "foo", true),
            ("(?=a)a", "a", true),
            ("[^]", "\u{a}", true),
            ("^[]$", "", false),
            ("[]", "a", false),
            ("\\cA", "\u{1}", true),
            ("\\c1", "\\c1", true),
            ("[\\d-z]", "-", true),
            ("[\\d-z]", "z", true),
            ("[\\d-z]", "m", false),
            ("(?:a|b)*?c", "ababc", true),
            ("a{,3}", "a{,3}", true),
            ("x{1,}", "xx", true),
            ("\\101", "A", true),
            ("[\\101]", "A", true),
            ("\\k", "k", true),
            ("\\2(a)(b)", "ab", true),
            ("(?<a>.)\\k<a>", "xx", true),
            ("(?<=a+)b", "aaab", true),
            ("(?<!^)b", "ab", true),
            ("\\/", "/", true),
            ("a.c", "a\u{2028}c", false),
            ("a.c", "a\u{a0}c", true),
            ("\\s", "\u{2029}", true),
            ("\\S", "\u{1680}", false),
            ("\\W", "é", true),
            ("[\\w-]", "-", true),
            ("\\u0041", "A", true),
            ("\\x41", "A", true),
            ("\\d{2,4}?", "12345", true),
            ("(a)|b", "b", true),
            ("((a)|b)\\2", "b", true),
            ("^\\d+$", "١٢", false),
            ("[a-z]+", "ÀBC", false),
            ("\\p", "p", true),
            ("\\P{L}", "P{L}", true),
            ("(?<x>a)(?<y>b)\\k<y>", "abb", true),
            ("\\0", "\u{0}", true),
            ("[\\0]", "\u{0}", true),
            ("\\00", "\u{0}", true),
            ("a{2,3}", "aaaa", true),
            ("^a{2,3}$", "aaaa", false),
            ("[-a]", "-", true),
            ("[a-]", "-", true),
            ("[\\s\\S]", "x", true),
            ("\\ca", "\u{1}", true),
            ("[\\c_]", "\u{1f}", true),
            ("\\c_", "\\c_", true),
        ];
        let mut wrong = Vec::new();
        for &(pattern, text, want) in cases {
            match JsRegex::new(pattern) {
                Ok(re) if re.is_match(text) == want => {}
                Ok(_) => wrong.push(format!("/{pattern}/ on {text:?}: want {want}")),
                Err(e) => wrong.push(format!("/{pattern}/: {e}")),
            }
        }
        for pattern in [
            "(?i)a",
            "a{3,2}",
            "[z-a]",
            "(?<a>)(?<a>)",
            "\\k<a>(?<b>)",
            "(?<=",
            "(?<1a>x)",
            "a***",
            "+a",
            "(?",
            "x)",
        ] {
            if JsRegex::new(pattern).is_ok() {
                wrong.push(format!("/{pattern}/ should not compile"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// The string-search path agrees with running the pattern through regress.
    #[test]
    fn literal_fast_path_agrees_with_regress() {
        let patterns = [
            "@corp\\.com$",
            "^beta",
            "^exact$",
            "a\\-b\\/c\\\\d",
            "🚀x",
            "^",
            "$",
            "",
            "ab",
            "\\(x\\)",
        ];
        let texts = [
            "",
            "x",
            "ab",
            "a@corp.com",
            "beta-1",
            "exact",
            "xa-b/c\\dx",
            "a🚀x",
            "(x)",
            "é@corp.com",
        ];
        for pattern in patterns {
            assert!(
                super::literal(pattern).is_some(),
                "{pattern} should be literal"
            );
            let fast = JsRegex::new(pattern).unwrap();
            let units = super::js_units(pattern);
            let slow =
                regress::Regex::from_unicode(units.into_iter(), regress::Flags::default()).unwrap();
            for text in texts {
                let want = slow
                    .find_from_ucs2(&text.encode_utf16().collect::<Vec<_>>(), 0)
                    .next()
                    .is_some();
                assert_eq!(fast.is_match(text), want, "/{pattern}/ on {text:?}");
            }
        }
        for not_literal in ["a.b", "a{2}", "a{", "]", "\\d", "a|b", "(a)", "^^", "a$b"] {
            assert!(super::literal(not_literal).is_none(), "{not_literal}");
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

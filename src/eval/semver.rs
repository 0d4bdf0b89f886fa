//! Versions for the `version …` operators, parsed and ordered as the JS engine does, and
//! JavaScript's string order (by UTF-16 code units), which those operators fall back to.
//!
//! The JS engine matches `^(\d+)\.(\d+)(\.(\d+)(-(([-\w]+\.?)*))?)?$`: no `+build`, a
//! missing patch is 0, leading zeros are fine, and the prerelease *keeps its hyphen*, so
//! `1.2.3-` has the prerelease `-` and sorts below `1.2.3`. Prereleases compare as plain
//! strings (`alpha.10` < `alpha.2`).

use std::cmp::Ordering;

/// A parsed version. Numbers are doubles because JS reads them with `Number(digits)`
/// (a 400-digit major is `Infinity`, and compares equal to another one).
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    major: f64,
    minor: f64,
    patch: f64,
    /// Including the leading `-`; `None` when absent.
    prerelease: Option<Box<str>>,
}

impl Version {
    /// Parses `major.minor[.patch[-prerelease]]`; `None` when the JS pattern does not match.
    pub fn parse(s: &str) -> Option<Version> {
        let (major, rest) = digits(s)?;
        let rest = rest.strip_prefix('.')?;
        let (minor, rest) = digits(rest)?;
        if rest.is_empty() {
            return Some(Version {
                major,
                minor,
                patch: 0.0,
                prerelease: None,
            });
        }
        let rest = rest.strip_prefix('.')?;
        let (patch, rest) = digits(rest)?;
        let prerelease = match rest {
            "" => None,
            pre if pre.starts_with('-') && valid_prerelease_body(&pre[1..]) => Some(pre.into()),
            _ => return None,
        };
        Some(Version {
            major,
            minor,
            patch,
            prerelease,
        })
    }

    /// The JS `compareTo`: numbers first, then a prerelease sorts below none, then
    /// prereleases by string order.
    pub fn compare(&self, other: &Version) -> Ordering {
        let numbers = [
            (self.major, other.major),
            (self.minor, other.minor),
            (self.patch, other.patch),
        ];
        for (a, b) in numbers {
            // NaN cannot occur: the parts are digit strings.
            match a.partial_cmp(&b) {
                Some(Ordering::Equal) | None => {}
                Some(order) => return order,
            }
        }
        match (&self.prerelease, &other.prerelease) {
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => js_cmp(a, b),
            (None, None) => Ordering::Equal,
        }
    }
}

/// One or more ASCII digits (JS `\d` is ASCII-only), read as JS `Number(digits)`.
fn digits(s: &str) -> Option<(f64, &str)> {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    if len == 0 {
        return None;
    }
    let digits = &s[..len];
    let n = if len <= 15 {
        // Below 10^15 the integer is exact in a double: no float parsing needed.
        digits
            .bytes()
            .fold(0u64, |n, d| n * 10 + u64::from(d - b'0')) as f64
    } else {
        // Rust parses digit strings to the correctly rounded double, like JS (and ∞ on overflow).
        digits.parse::<f64>().ok()?
    };
    Some((n, &s[len..]))
}

/// `([-\w]+\.?)*`: characters from `[-A-Za-z0-9_.]`, not starting with a dot, no two dots
/// in a row.
fn valid_prerelease_body(body: &str) -> bool {
    let mut previous_dot = true;
    for b in body.bytes() {
        match b {
            b'.' if previous_dot => return false,
            b'.' => previous_dot = true,
            b'-' | b'_' => previous_dot = false,
            b if b.is_ascii_alphanumeric() => previous_dot = false,
            _ => return false,
        }
    }
    true
}

/// JavaScript's `<` on strings: lexicographic by UTF-16 code units. It differs from
/// Rust's (code point) order only between a supplementary character, whose first unit is a
/// surrogate (U+D800..U+DBFF), and a BMP character at or above U+E000: `"🚀" < "～"` in JS.
pub fn js_cmp(a: &str, b: &str) -> Ordering {
    if a.is_ascii() || b.is_ascii() {
        // An ASCII character is below every surrogate: code point order is the same.
        return a.cmp(b);
    }
    for (x, y) in a.chars().zip(b.chars()) {
        if x != y {
            return first_unit(x).cmp(&first_unit(y)).then(x.cmp(&y));
        }
    }
    a.len().cmp(&b.len())
}

/// The first UTF-16 code unit of `c`.
fn first_unit(c: char) -> u32 {
    let c = c as u32;
    if c >= 0x1_0000 {
        0xd800 + ((c - 0x1_0000) >> 10)
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap_or_else(|| panic!("{s} should parse"))
    }

    #[test]
    fn parses_the_js_pattern() {
        assert_eq!(v("1.2"), v("1.2.0"));
        assert_eq!(v("01.002.0003"), v("1.2.3"));
        assert_eq!(v("1.2.3-").prerelease.as_deref(), Some("-"));
        assert_eq!(v("1.2.3-alpha.1").prerelease.as_deref(), Some("-alpha.1"));
        assert_eq!(v("1.2.3--x-.y_z.").prerelease.as_deref(), Some("--x-.y_z."));
        for bad in [
            "",
            "1",
            "1.",
            "1.2.",
            "1.2.3.4",
            "v1.2.3",
            "1.2-beta",
            "1.2.3+build",
            "1.2.3-a+b",
            "1.2.3-.a",
            "1.2.3-a..b",
            "1.2.3-é",
            " 1.2.3",
            "1.2.3 ",
            "١.2.3",
            "1.2.3-a b",
        ] {
            assert_eq!(Version::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn orders_like_the_js_engine() {
        let lt = |a: &str, b: &str| assert_eq!(v(a).compare(&v(b)), Ordering::Less, "{a} < {b}");
        lt("1.2.3", "1.2.4");
        lt("1.2.9", "1.10.0");
        lt("1.9", "1.10");
        lt("1.2.3-", "1.2.3");
        lt("1.2.3-alpha", "1.2.3");
        lt("1.2.3-alpha.10", "1.2.3-alpha.2");
        lt("1.2.3-alpha", "1.2.3-beta");
        lt("1.2.3-Z", "1.2.3-a");
        assert_eq!(v("1.2.0").compare(&v("1.2")), Ordering::Equal);
        let huge = format!("{}.0.0", "9".repeat(400));
        assert_eq!(
            v(&huge).compare(&v(&huge.replace('9', "8"))),
            Ordering::Equal,
            "both majors are ∞"
        );
    }

    #[test]
    fn js_string_order_is_by_utf16_units() {
        assert_eq!(js_cmp("🚀", "～"), Ordering::Less);
        assert_eq!("🚀".cmp("～"), Ordering::Greater, "Rust's order differs");
        assert_eq!(js_cmp("a🚀", "a🦎"), Ordering::Less);
        assert_eq!(js_cmp("é", "e"), Ordering::Greater);
        assert_eq!(js_cmp("ab", "abc"), Ordering::Less);
        assert_eq!(js_cmp("日本", "日本"), Ordering::Equal);
        assert_eq!(js_cmp("\u{ffff}", "\u{10000}"), Ordering::Greater);
        assert_eq!(js_cmp("\u{d7ff}", "\u{10000}"), Ordering::Less);
    }
}

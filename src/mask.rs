//! Masking of deployment keys for logs: only the last four characters are shown.

use std::fmt;

/// Displays a secret as `…` followed by its last four characters.
pub struct Masked<'a>(pub &'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tail: String = {
            let chars: Vec<char> = self.0.chars().collect();
            let start = chars.len().saturating_sub(4);
            // Keys of four characters or fewer are masked entirely.
            if chars.len() <= 4 {
                String::new()
            } else {
                chars[start..].iter().collect()
            }
        };
        write!(f, "…{tail}")
    }
}

impl fmt::Debug for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::Masked;

    #[test]
    fn shows_only_the_last_four() {
        assert_eq!(Masked("server-abcdefgh1234").to_string(), "…1234");
        assert_eq!(Masked("abcd").to_string(), "…");
        assert_eq!(Masked("").to_string(), "…");
    }
}

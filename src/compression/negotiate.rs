//! Content negotiation: which encoding a client's `Accept-Encoding` asks for (RFC 9110
//! §12.5.3), parsed once per request of a cacheable route, without allocating.
//!
//! Tokens are case-insensitive; `q` weights go from 0 to 1 in thousandths; `*` stands for
//! every coding the field does not name; `x-gzip` is `gzip` (§8.4.1.3). `br` wins a tie
//! with `gzip` (smaller for the same q). Identity is acceptable unless `identity;q=0`, or
//! `*;q=0` without an `identity` entry, excludes it; when it is not named, it is the
//! least preferred acceptable choice.

use http::HeaderValue;
use http::header::GetAll;

/// A compressed encoding evalgate produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    Gzip,
    Br,
}

impl Encoding {
    pub const ALL: [Encoding; 2] = [Encoding::Gzip, Encoding::Br];

    /// The `Content-Encoding` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Br => "br",
        }
    }

    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

/// What one request's `Accept-Encoding` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The compressed encoding with the highest weight above 0 (`br` on a tie).
    preferred: Option<Encoding>,
    /// `identity` named with a higher weight than `preferred`: the client prefers
    /// uncompressed answers.
    identity_first: bool,
    /// Whether an uncompressed answer is acceptable at all.
    identity_ok: bool,
}

impl Accepted {
    /// No `Accept-Encoding` (or compression off): identity only.
    pub const IDENTITY: Accepted = Accepted {
        preferred: None,
        identity_first: true,
        identity_ok: true,
    };

    /// Parses every `Accept-Encoding` field of a request. No field: identity (what every
    /// server does, though RFC 9110 would allow any coding). An empty field: identity
    /// (§12.5.3: "does not want any content coding").
    pub fn parse(fields: GetAll<'_, HeaderValue>) -> Accepted {
        let mut weights = Weights::default();
        let mut any = false;
        for field in fields {
            any = true;
            // A field that is not visible ASCII names nothing we produce.
            let Ok(text) = field.to_str() else { continue };
            for element in text.split(',') {
                weights.add(element);
            }
        }
        if !any {
            return Accepted::IDENTITY;
        }
        weights.decide()
    }

    /// The encoding for an answer of `len` bytes: `None` is identity. Below `min_bytes`
    /// identity is served unless the client excluded it; when nothing the client accepts
    /// can be produced (every coding and identity at q=0), identity is served anyway,
    /// like nginx, rather than a 406: the answer is still usable by a client that asked
    /// badly.
    pub fn choose(self, len: usize, min_bytes: usize) -> Option<Encoding> {
        let encoding = self.preferred?;
        if self.identity_first || (len < min_bytes && self.identity_ok) {
            return None;
        }
        Some(encoding)
    }
}

/// The weights (thousandths) named by a field, `None` where not named.
#[derive(Debug, Default)]
struct Weights {
    br: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    star: Option<u16>,
}

impl Weights {
    /// One element: `token *( OWS ";" OWS param )`; an element with a malformed weight
    /// is ignored (as if absent), the rest of the field still counts.
    fn add(&mut self, element: &str) {
        let mut parts = element.split(';');
        let token = parts.next().unwrap_or("").trim();
        if token.is_empty() {
            return;
        }
        let mut q = Some(1000);
        for param in parts {
            let Some((name, value)) = param.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("q") {
                q = qvalue(value.trim());
            }
        }
        let Some(q) = q else { return };
        let slot = if token.eq_ignore_ascii_case("br") {
            &mut self.br
        } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
            &mut self.gzip
        } else if token.eq_ignore_ascii_case("identity") {
            &mut self.identity
        } else if token == "*" {
            &mut self.star
        } else {
            return;
        };
        // Named twice: the higher weight (clients do not do this on purpose).
        *slot = Some(slot.map_or(q, |old| old.max(q)));
    }

    fn decide(&self) -> Accepted {
        let br = self.br.or(self.star).unwrap_or(0);
        let gzip = self.gzip.or(self.star).unwrap_or(0);
        let (preferred, best) = if br > 0 && br >= gzip {
            (Some(Encoding::Br), br)
        } else if gzip > 0 {
            (Some(Encoding::Gzip), gzip)
        } else {
            (None, 0)
        };
        let identity_ok = match (self.identity, self.star) {
            (Some(q), _) => q > 0,
            (None, Some(0)) => false,
            (None, _) => true,
        };
        Accepted {
            preferred,
            identity_first: self.identity.is_some_and(|q| q > best),
            identity_ok,
        }
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn qvalue(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, digit) in fraction.bytes().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;
    use http::header::ACCEPT_ENCODING;

    fn accepted(fields: &[&str]) -> Accepted {
        let mut headers = HeaderMap::new();
        for field in fields {
            headers.append(ACCEPT_ENCODING, HeaderValue::from_str(field).unwrap());
        }
        Accepted::parse(headers.get_all(ACCEPT_ENCODING))
    }

    /// The encoding for a large answer (above any threshold) and for a tiny one.
    fn large(fields: &[&str]) -> Option<Encoding> {
        accepted(fields).choose(1 << 20, 1024)
    }

    fn small(fields: &[&str]) -> Option<Encoding> {
        accepted(fields).choose(10, 1024)
    }

    #[test]
    fn browsers_get_br() {
        assert_eq!(large(&["gzip, deflate, br, zstd"]), Some(Encoding::Br));
        assert_eq!(large(&["gzip, deflate"]), Some(Encoding::Gzip));
        assert_eq!(large(&["gzip", "br"]), Some(Encoding::Br));
    }

    #[test]
    fn weights_decide_and_br_wins_ties() {
        assert_eq!(large(&["gzip;q=1, br;q=0.5"]), Some(Encoding::Gzip));
        assert_eq!(large(&["br;q=0.8, gzip;q=0.8"]), Some(Encoding::Br));
        assert_eq!(large(&["br;q=0, gzip"]), Some(Encoding::Gzip));
        assert_eq!(large(&["GZIP ; Q=0.5"]), Some(Encoding::Gzip));
        assert_eq!(large(&["x-gzip"]), Some(Encoding::Gzip));
        // Identity preferred over the only coding offered.
        assert_eq!(large(&["identity;q=1, gzip;q=0.5"]), None);
    }

    #[test]
    fn star_covers_what_is_not_named() {
        assert_eq!(large(&["*"]), Some(Encoding::Br));
        assert_eq!(large(&["br;q=0, *"]), Some(Encoding::Gzip));
        assert_eq!(large(&["*;q=0"]), None);
    }

    #[test]
    fn identity_excluded_compresses_even_small_answers() {
        assert_eq!(small(&["gzip"]), None);
        assert_eq!(small(&["gzip, identity;q=0"]), Some(Encoding::Gzip));
        assert_eq!(small(&["br, *;q=0"]), Some(Encoding::Br));
        assert_eq!(small(&["br, identity, *;q=0"]), None);
    }

    #[test]
    fn nothing_acceptable_is_answered_in_identity() {
        assert_eq!(large(&["identity;q=0"]), None);
        assert_eq!(large(&["gzip;q=0, br;q=0, identity;q=0"]), None);
        assert_eq!(large(&["zstd, deflate"]), None);
    }

    #[test]
    fn absent_empty_and_malformed_fields_mean_identity() {
        assert_eq!(large(&[]), None);
        assert_eq!(large(&[""]), None);
        assert_eq!(large(&[" , ,"]), None);
        // A malformed weight drops its element only.
        assert_eq!(large(&["br;q=2, gzip"]), Some(Encoding::Gzip));
        assert_eq!(large(&["br;q=0.5555"]), None);
        assert_eq!(large(&["gzip;q=1.000"]), Some(Encoding::Gzip));
        assert_eq!(large(&["gzip;q=1.001"]), None);
    }

    #[test]
    fn qvalues_are_thousandths() {
        assert_eq!(qvalue("0"), Some(0));
        assert_eq!(qvalue("0.5"), Some(500));
        assert_eq!(qvalue("0.125"), Some(125));
        assert_eq!(qvalue("1"), Some(1000));
        assert_eq!(qvalue("1."), Some(1000));
        assert_eq!(qvalue(""), None);
        assert_eq!(qvalue(".5"), None);
        assert_eq!(qvalue("0.5x"), None);
    }
}

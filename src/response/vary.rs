//! `Vary`: what an answer depends on besides its URL, for every cache between evalgate
//! and the client. Headers that depend on the request (CORS on `Origin`, compression on
//! `Accept-Encoding`) each add their token here, so none overwrites another's.

use http::{HeaderMap, HeaderValue, header::VARY};

/// Adds `token` (a header name) to the answer's `Vary`, as a field line of its own, unless
/// `Vary` already lists it (in any case) or is `*`. No allocation: `token` is static.
pub fn append_vary(headers: &mut HeaderMap, token: &'static str) {
    let listed = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|t| t == "*" || t.eq_ignore_ascii_case(token));
    if !listed {
        headers.append(VARY, HeaderValue::from_static(token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vary(headers: &HeaderMap) -> Vec<&str> {
        headers
            .get_all(VARY)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    }

    #[test]
    fn appends_beside_what_is_there() {
        let mut headers = HeaderMap::new();
        append_vary(&mut headers, "Accept-Encoding");
        append_vary(&mut headers, "Origin");
        assert_eq!(vary(&headers), ["Accept-Encoding", "Origin"]);
    }

    #[test]
    fn never_repeats_a_token() {
        let mut headers = HeaderMap::new();
        headers.insert(VARY, HeaderValue::from_static("accept-encoding, origin"));
        append_vary(&mut headers, "Origin");
        append_vary(&mut headers, "Accept-Encoding");
        assert_eq!(vary(&headers), ["accept-encoding, origin"]);
        let mut star = HeaderMap::new();
        star.insert(VARY, HeaderValue::from_static("*"));
        append_vary(&mut star, "Origin");
        assert_eq!(vary(&star), ["*"]);
    }
}

//! `Vary`: what an answer depends on besides its URL, for every cache between evalgate
//! and the client. Headers that depend on the request (CORS on `Origin`, compression on
//! `Accept-Encoding`) each add their token here, so none overwrites another's; a token
//! the upstream's `Vary` must not carry is taken out here.

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

/// Removes `token` (any case) from the answer's `Vary`, keeping every other token and
/// dropping a field line left empty. Allocates only when `token` is there.
pub fn remove_vary(headers: &mut HeaderMap, token: &str) {
    let is_token = |t: &str| t.trim().eq_ignore_ascii_case(token);
    let listed = headers
        .get_all(VARY)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(is_token)));
    if !listed {
        return;
    }
    let kept: Vec<HeaderValue> = headers
        .get_all(VARY)
        .iter()
        .filter_map(|value| {
            let Ok(text) = value.to_str() else {
                return Some(value.clone());
            };
            if !text.split(',').any(is_token) {
                return Some(value.clone());
            }
            let rest: Vec<&str> = text
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty() && !is_token(t))
                .collect();
            if rest.is_empty() {
                return None;
            }
            // Visible ASCII taken from a valid value: valid.
            HeaderValue::from_str(&rest.join(", ")).ok()
        })
        .collect();
    headers.remove(VARY);
    for value in kept {
        headers.append(VARY, value);
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
    fn removes_one_token_and_keeps_the_rest() {
        let mut headers = HeaderMap::new();
        headers.append(VARY, HeaderValue::from_static("Accept-Encoding, origin"));
        headers.append(VARY, HeaderValue::from_static("ORIGIN"));
        headers.append(VARY, HeaderValue::from_static("X-Other"));
        remove_vary(&mut headers, "Origin");
        assert_eq!(vary(&headers), ["Accept-Encoding", "X-Other"]);
        let mut untouched = HeaderMap::new();
        untouched.insert(VARY, HeaderValue::from_static("Originator,  Accept"));
        remove_vary(&mut untouched, "Origin");
        assert_eq!(vary(&untouched), ["Originator,  Accept"]);
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

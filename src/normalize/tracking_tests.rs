//! `upstream.tracking = "never"`: on every cacheable route the client's tracking headers
//! are not read, and the key forwards `no-track` for assignments and exposures.

use http::Method;

use super::tests::{headers, limits};
use super::*;
use crate::key::CacheKey;

const AUTH: (&str, &str) = ("authorization", "Api-Key deployment-key-1");

fn never() -> Limits {
    Limits {
        tracking: Tracking::Never,
        ..limits()
    }
}

/// Every way a client may spell (or not spell) its tracking wishes, including those that
/// bypass the cache in passthrough mode.
fn spellings() -> Vec<HeaderMap> {
    [
        vec![AUTH],
        vec![AUTH, ("x-amp-exp-track", "track")],
        vec![AUTH, ("x-amp-exp-track", "no-track")],
        vec![AUTH, ("x-amp-exp-exposure-track", "track")],
        vec![AUTH, ("x-amp-exp-exposure-track", "no-track")],
        vec![AUTH, ("x-amp-exp-track", "a"), ("x-amp-exp-track", "b")],
    ]
    .iter()
    .map(|pairs| headers(pairs))
    .collect()
}

fn key(path: &str, method: &Method, query: &str, h: &HeaderMap, body: &[u8]) -> CacheKey {
    match normalize(method, path, Some(query), h, body, &never()) {
        Some(Decision::Cache(key)) => key,
        other => panic!("{method} {path}: expected a key, got {other:?}"),
    }
}

#[test]
fn never_keys_ignore_the_clients_tracking_headers_on_every_route() {
    let routes: [(&str, Method, &str, &[u8]); 5] = [
        ("/v1/vardata", Method::GET, "user_id=u", b""),
        (
            "/sdk/v2/vardata",
            Method::POST,
            "v=0",
            br#"{"user_id":"u"}"#,
        ),
        ("/sdk/vardata", Method::GET, "", b""),
        ("/sdk/v2/flags", Method::GET, "v=0", b""),
        ("/v1/flags", Method::GET, "", b""),
    ];
    for (path, method, query, body) in routes {
        let keys: Vec<CacheKey> = spellings()
            .iter()
            .map(|h| key(path, &method, query, h, body))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]), "{path}");
        assert_eq!(keys[0].track(), Some(NO_TRACK), "{path}");
        assert_eq!(keys[0].exposure_track(), Some(NO_TRACK), "{path}");
        let request = keys[0].upstream_request("http://up").unwrap();
        assert_eq!(request.headers()["x-amp-exp-track"], "no-track");
        assert_eq!(request.headers()["x-amp-exp-exposure-track"], "no-track");
    }
}

#[test]
fn never_and_passthrough_keys_differ_even_for_a_no_track_client() {
    let h = headers(&[AUTH, ("x-amp-exp-track", "no-track")]);
    let passthrough = match v1_vardata(&Method::GET, Some("user_id=u"), &h, &limits()) {
        Decision::Cache(key) => key,
        other => panic!("{other:?}"),
    };
    let never = key("/v1/vardata", &Method::GET, "user_id=u", &h, b"");
    assert_eq!(passthrough.track(), never.track());
    assert_eq!(passthrough.exposure_track(), None);
    assert_ne!(passthrough, never);
}

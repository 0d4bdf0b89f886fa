//! Unit tests of the policy: grants, preflight answers, headers added to answers.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ALLOW,
    ORIGIN, VARY,
};
use http::{HeaderMap, HeaderValue, StatusCode};

use super::*;

fn policy(origins: &[&str]) -> Cors {
    Cors::new(&CorsConfig {
        allowed_origins: origins.iter().map(|o| o.to_string()).collect(),
        max_age_s: 600,
    })
}

fn with_origin(origin: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ORIGIN, HeaderValue::from_str(origin).unwrap());
    headers
}

#[test]
fn star_grants_everyone_without_reading_origin() {
    let cors = policy(&["*"]);
    assert_eq!(cors.grant(&HeaderMap::new()), Grant::Any);
    assert_eq!(cors.grant(&with_origin("https://a.example")), Grant::Any);
    assert!(!cors.varies());
}

#[test]
fn a_list_echoes_allowed_origins_as_sent() {
    let cors = policy(&["https://App.example.com:443", "http://localhost:3000"]);
    assert!(cors.varies());
    for origin in [
        "https://app.example.com",
        "https://APP.example.com",
        "https://app.example.com:443",
        "http://localhost:3000",
    ] {
        assert_eq!(
            cors.grant(&with_origin(origin)),
            Grant::Origin(HeaderValue::from_str(origin).unwrap()),
            "{origin}"
        );
    }
    for refused in [
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://evil.example.com",
        "https://app.example.com.evil.example",
        "http://localhost:3001",
        "null",
        "not an origin",
    ] {
        assert_eq!(
            cors.grant(&with_origin(refused)),
            Grant::Refused,
            "{refused}"
        );
    }
    assert_eq!(cors.grant(&HeaderMap::new()), Grant::Refused);
    let mut twice = with_origin("https://app.example.com");
    twice.append(ORIGIN, HeaderValue::from_static("https://app.example.com"));
    assert_eq!(cors.grant(&twice), Grant::Refused);
}

#[test]
fn an_empty_list_is_cors_off() {
    let cors = policy(&[]);
    assert_eq!(
        cors.grant(&with_origin("https://a.example")),
        Grant::Refused
    );
    assert!(!cors.varies());
    let mut headers = HeaderMap::new();
    cors.apply(Grant::Refused, &mut headers);
    assert!(headers.is_empty(), "{headers:?}");
}

#[test]
fn apply_adds_origin_expose_and_vary() {
    let cors = policy(&["https://app.example.com"]);
    let mut headers = HeaderMap::new();
    headers.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    let origin = HeaderValue::from_static("https://app.example.com");
    cors.apply(Grant::Origin(origin.clone()), &mut headers);
    assert_eq!(headers[ACCESS_CONTROL_ALLOW_ORIGIN], origin);
    assert_eq!(
        headers[ACCESS_CONTROL_EXPOSE_HEADERS],
        "X-Cache, X-Cache-Tier, Age, Retry-After"
    );
    let vary: Vec<_> = headers.get_all(VARY).iter().collect();
    assert_eq!(vary, ["Accept-Encoding", "Origin"]);
    assert!(!headers.contains_key(ACCESS_CONTROL_ALLOW_CREDENTIALS));

    // Refused: no CORS header, but the answer still varies on `Origin`.
    let mut refused = HeaderMap::new();
    cors.apply(Grant::Refused, &mut refused);
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[VARY], "Origin");
}

#[test]
fn preflights_list_the_route_methods_and_sdk_headers() {
    let cors = policy(&["*"]);
    let answer = cors.preflight(RouteFamily::SdkV2Vardata, &Grant::Any);
    assert_eq!(answer.status(), StatusCode::NO_CONTENT);
    let h = answer.headers();
    assert_eq!(h[ALLOW], "GET, HEAD, POST, OPTIONS");
    assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, HEAD, POST, OPTIONS");
    assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
    let allowed = h[ACCESS_CONTROL_ALLOW_HEADERS].to_str().unwrap();
    for name in [
        "Authorization",
        "Content-Type",
        "X-Amp-Exp-User",
        "X-Amp-Exp-Flag-Keys",
        "X-Amp-Exp-Track",
        "X-Amp-Exp-Exposure-Track",
        "X-Amp-Exp-Library",
    ] {
        assert!(allowed.split(", ").any(|n| n == name), "{name}: {allowed}");
    }
    let flags = cors.preflight(RouteFamily::V1Flags, &Grant::Any);
    assert_eq!(
        flags.headers()[ACCESS_CONTROL_ALLOW_METHODS],
        "GET, HEAD, OPTIONS"
    );

    let refused = cors.preflight(RouteFamily::V1Vardata, &Grant::Refused);
    assert_eq!(refused.status(), StatusCode::NO_CONTENT);
    assert_eq!(refused.headers().len(), 1, "{:?}", refused.headers());
    assert_eq!(refused.headers()[ALLOW], "GET, HEAD, OPTIONS");
}

#[test]
fn upstream_cors_headers_are_stripped() {
    let mut headers = HeaderMap::new();
    headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    headers.insert(
        ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    headers.insert("x-kept", HeaderValue::from_static("1"));
    strip_upstream(&mut headers);
    assert_eq!(headers.len(), 1, "{headers:?}");
    assert!(headers.contains_key("x-kept"));
}

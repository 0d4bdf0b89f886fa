//! Browsers on the cacheable routes: CORS preflights answered by evalgate (never
//! forwarded), the same CORS headers on every kind of answer (HIT, STALE, MISS, BYPASS,
//! HEAD, relayed 4xx/5xx, evalgate's own errors) from the request's own `Origin`, the
//! upstream's CORS headers (and its `Vary: Origin`) never relayed. The `Cache-Control`
//! clients get is `tests/client_cache_control.rs`.
//!
//! [`preflights`]: `OPTIONS` answered here; [`answers`]: the headers of every other answer.
//! Real gateway, real recording upstream, both on 127.0.0.1:0.

mod support;

#[path = "cors/answers.rs"]
mod answers;
#[path = "cors/preflights.rs"]
mod preflights;

use evalgate::{Config, Gateway};
use http::{Method, StatusCode};
use support::*;

const APP: &str = "https://app.example.com";
const OTHER_APP: &str = "http://localhost:3000";
const EVIL: &str = "https://evil.example";
const EXPOSED: &str = "X-Cache, X-Cache-Tier, Age, Retry-After";

/// Every cacheable route, the methods it takes, and a query it answers.
const ROUTES: [(&str, &[&str], &str); 5] = [
    ("/v1/vardata", &["GET", "HEAD"], "user_id=u1"),
    ("/sdk/v2/vardata", &["GET", "HEAD", "POST"], "v=0"),
    ("/sdk/vardata", &["GET", "HEAD", "POST"], ""),
    ("/sdk/v2/flags", &["GET", "HEAD"], "v=0"),
    ("/v1/flags", &["GET", "HEAD"], ""),
];

fn config(upstream: &FakeUpstream, origins: &[&str]) -> Config {
    let mut config = config_for(&upstream.url());
    config.cors.allowed_origins = origins.iter().map(|o| o.to_string()).collect();
    config
}

async fn start(config: Config) -> (Gateway, TestGateway) {
    let gateway = Gateway::new(config.validate().unwrap()).unwrap();
    let gw = TestGateway::start_gateway(gateway.clone()).await;
    (gateway, gw)
}

fn auth() -> String {
    format!("Api-Key {KEY}")
}

/// A request with `Authorization` and, when given, `Origin`.
async fn ask(gw: &TestGateway, method: Method, target: &str, origin: Option<&str>) -> Got {
    let auth = auth();
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    send(&client(), method, &gw.url(target), &headers, "").await
}

/// A browser's preflight for a `method` request with the SDK's headers.
async fn preflight(gw: &TestGateway, path: &str, method: &str, origin: Option<&str>) -> Got {
    let mut headers = vec![
        ("access-control-request-method", method),
        (
            "access-control-request-headers",
            "authorization,x-amp-exp-user,x-amp-exp-flag-keys",
        ),
    ];
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    send(&client(), Method::OPTIONS, &gw.url(path), &headers, "").await
}

fn vary(got: &Got) -> Vec<String> {
    got.headers
        .get_all("vary")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .collect()
}

fn cors_headers(got: &Got) -> Vec<&str> {
    got.headers
        .keys()
        .map(|n| n.as_str())
        .filter(|n| n.starts_with("access-control-"))
        .collect()
}

/// The headers of an answer a page at an allowed origin may read: `allow_origin` echoed
/// (or `*`), the exposed headers, `Vary: Origin` when `varies`, never credentials.
fn assert_cors(got: &Got, allow_origin: &str, varies: bool, what: &str) {
    assert_eq!(
        got.header("access-control-allow-origin"),
        Some(allow_origin),
        "{what}: {:?}",
        got.headers
    );
    assert_eq!(
        got.header("access-control-expose-headers"),
        Some(EXPOSED),
        "{what}"
    );
    assert!(
        !got.headers.contains_key("access-control-allow-credentials"),
        "{what}"
    );
    assert_eq!(vary(got).contains(&"origin".to_string()), varies, "{what}");
}

//! The `Cache-Control` clients get on the cacheable routes (`cache.client_cache_control`):
//! the configured value on successes only, `no-store` on every error, none on the
//! preflight; with `""`, the upstream's own on relayed answers; the upstream's targeted
//! fields (`CDN-Cache-Control`, `<CDN>-CDN-Cache-Control`, `Surrogate-Control`) never.
//!
//! Real gateway, real recording upstream, both on 127.0.0.1:0.

mod support;

use evalgate::{Config, Gateway};
use http::{Method, StatusCode};
use support::*;

const APP: &str = "https://app.example.com";

fn config(upstream: &FakeUpstream, client_cache_control: &str) -> Config {
    let mut config = config_for(&upstream.url());
    config.cache.client_cache_control = client_cache_control.into();
    config
}

async fn start(config: Config) -> TestGateway {
    TestGateway::start_gateway(Gateway::new(config.validate().unwrap()).unwrap()).await
}

/// A request with `Origin` and `Authorization` for `key`.
async fn ask(gw: &TestGateway, method: Method, target: &str, key: &str) -> Got {
    let auth = format!("Api-Key {key}");
    let headers = [("authorization", auth.as_str()), ("origin", APP)];
    send(&client(), method, &gw.url(target), &headers, "").await
}

/// With `private, max-age=60`, a browser may reuse a success for a minute, never an
/// error: relayed `401`/`429`/`503`, a remembered `401`, evalgate's `502`, `413` and
/// `405` all say `no-store`. The preflight says nothing (`Access-Control-Max-Age` rules it).
#[tokio::test]
async fn the_value_goes_on_successes_and_no_store_on_every_error() {
    let upstream = FakeUpstream::start().await;
    let mut cfg = config(&upstream, "private, max-age=60");
    cfg.cache.negative_ttl_s = 60;
    cfg.server.max_body_bytes = 64;
    let gw = start(cfg).await;
    let check = |got: &Got, status: u16, x_cache: Option<&str>, cc: Option<&str>, what: &str| {
        assert_eq!(got.status.as_u16(), status, "{what}: {:?}", got.body);
        assert_eq!(got.header("x-cache"), x_cache, "{what}");
        assert_eq!(got.header("cache-control"), cc, "{what}: {:?}", got.headers);
    };
    let value = Some("private, max-age=60");
    let no_store = Some("no-store");

    let miss = ask(&gw, Method::GET, "/v1/vardata?user_id=u", KEY).await;
    check(&miss, 200, Some("MISS"), value, "MISS");
    let hit = ask(&gw, Method::GET, "/v1/vardata?user_id=u", KEY).await;
    check(&hit, 200, Some("HIT"), value, "HIT");
    let head = ask(&gw, Method::HEAD, "/v1/vardata?user_id=u", KEY).await;
    check(&head, 200, Some("HIT"), value, "HEAD");
    let bypass = ask(&gw, Method::GET, "/sdk/v2/vardata?v=0&d=1", KEY).await;
    check(&bypass, 200, Some("BYPASS"), value, "BYPASS");

    let denied = ask(&gw, Method::GET, "/v1/vardata?user_id=u", "not-a-key").await;
    check(&denied, 401, Some("MISS"), no_store, "relayed 401");
    let remembered = ask(&gw, Method::GET, "/v1/vardata?user_id=u", "not-a-key").await;
    check(&remembered, 401, Some("HIT"), no_store, "remembered 401");
    let bad_context = ask(&gw, Method::GET, "/v1/vardata?context=%5B1%5D", KEY).await;
    check(&bad_context, 400, Some("BYPASS"), no_store, "relayed 400");
    upstream.update(|s| s.status = Some(StatusCode::TOO_MANY_REQUESTS));
    let limited = ask(&gw, Method::GET, "/v1/flags?x=429", KEY).await;
    check(&limited, 429, Some("MISS"), no_store, "relayed 429");
    upstream.update(|s| s.status = Some(StatusCode::SERVICE_UNAVAILABLE));
    let down = ask(&gw, Method::GET, "/sdk/v2/flags?v=503", KEY).await;
    check(&down, 503, Some("MISS"), no_store, "relayed 503");
    upstream.update(|s| {
        s.status = None;
        s.raw_body = Some("not json");
    });
    let garbage = ask(&gw, Method::GET, "/v1/vardata?user_id=garbage", KEY).await;
    check(&garbage, 502, Some("MISS"), no_store, "evalgate's 502");
    let big = send(
        &client(),
        Method::POST,
        &gw.url("/sdk/vardata"),
        &[("origin", APP)],
        &"x".repeat(65),
    )
    .await;
    check(&big, 413, Some("BYPASS"), no_store, "evalgate's 413");
    let trace = ask(&gw, Method::TRACE, "/v1/vardata", KEY).await;
    check(&trace, 405, None, no_store, "evalgate's 405");

    let preflight = send(
        &client(),
        Method::OPTIONS,
        &gw.url("/sdk/v2/vardata"),
        &[("origin", APP), ("access-control-request-method", "GET")],
        "",
    )
    .await;
    check(&preflight, 204, None, None, "preflight");
    assert_eq!(preflight.header("access-control-max-age"), Some("7200"));
}

/// `""`: evalgate sends no `Cache-Control`, and relayed answers keep the upstream's own
/// `Cache-Control` and `Expires` (here `no-store, private`: a browser must not keep them).
#[tokio::test]
async fn empty_keeps_the_upstreams_own_on_relayed_answers() {
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| {
        s.headers = vec![
            ("cache-control", "no-store, private"),
            ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ]
    });
    let mut cfg = config(&upstream, "");
    // Stored all the same, to see the hit.
    cfg.cache.ignore_upstream_cache_control = true;
    let gw = start(cfg).await;
    let relayed = [
        ask(&gw, Method::GET, "/sdk/v2/vardata?v=0&d=1", KEY).await,
        ask(&gw, Method::GET, "/v1/vardata?user_id=u", "not-a-key").await,
    ];
    for got in &relayed {
        let what = format!("{} {}", got.status, got.x_cache());
        assert_eq!(
            got.header("cache-control"),
            Some("no-store, private"),
            "{what}"
        );
        assert_eq!(
            got.header("expires"),
            Some("Thu, 01 Jan 1970 00:00:00 GMT"),
            "{what}"
        );
    }
    assert_eq!(relayed[0].x_cache(), "BYPASS");
    assert_eq!(relayed[1].status, StatusCode::UNAUTHORIZED);
    // Built by evalgate (a 200 from the cache's bytes, its own error): nothing.
    let miss = ask(&gw, Method::GET, "/v1/vardata?user_id=u", KEY).await;
    let hit = ask(&gw, Method::GET, "/v1/vardata?user_id=u", KEY).await;
    let trace = ask(&gw, Method::TRACE, "/v1/vardata", KEY).await;
    for (got, what) in [(&miss, "MISS"), (&hit, "HIT"), (&trace, "405")] {
        assert_eq!(
            got.header("cache-control"),
            None,
            "{what}: {:?}",
            got.headers
        );
        assert_eq!(got.header("expires"), None, "{what}");
    }
    assert_eq!(hit.x_cache(), "HIT");
}

/// The upstream's targeted fields address its own CDN: on the cacheable routes they are
/// never relayed, under any setting (a CDN in front of evalgate would store one user's
/// answer for everybody); elsewhere the passthrough relays them.
#[tokio::test]
async fn targeted_cache_control_fields_are_never_relayed() {
    const TARGETED: [&str; 3] = [
        "cdn-cache-control",
        "cloudflare-cdn-cache-control",
        "surrogate-control",
    ];
    for setting in ["no-store", ""] {
        let upstream = FakeUpstream::start().await;
        upstream.update(|s| {
            s.headers = vec![
                ("cdn-cache-control", "public, max-age=600"),
                ("Cloudflare-CDN-Cache-Control", "max-age=600"),
                ("surrogate-control", "max-age=600"),
            ]
        });
        let gw = start(config(&upstream, setting)).await;
        let answers = [
            ask(&gw, Method::GET, "/sdk/v2/vardata?v=0&d=1", KEY).await,
            ask(&gw, Method::GET, "/v1/vardata?user_id=u", "not-a-key").await,
            ask(&gw, Method::GET, "/v1/vardata?user_id=u", KEY).await,
        ];
        let kinds: Vec<_> = answers.iter().map(|a| a.x_cache().to_string()).collect();
        assert_eq!(kinds, ["BYPASS", "MISS", "MISS"], "{setting:?}");
        for got in &answers {
            for name in TARGETED {
                assert_eq!(
                    got.header(name),
                    None,
                    "{setting:?} {} {}: {name}",
                    got.status,
                    got.x_cache()
                );
            }
        }
        let other = ask(&gw, Method::GET, "/other", KEY).await;
        for name in TARGETED {
            assert!(other.header(name).is_some(), "{setting:?} /other: {name}");
        }
    }
}

/// `Gateway::new` checks what it reads itself: an unvalidated config with a bad origin,
/// extra header or `Cache-Control` value is a config error naming the key, not a panic.
#[tokio::test]
async fn an_unvalidated_config_is_an_error_not_a_panic() {
    let upstream = FakeUpstream::start().await;
    let mut origins = config(&upstream, "no-store");
    origins.cors.allowed_origins = vec!["https://app.example.com/".into()];
    let mut extra = config(&upstream, "no-store");
    extra.cors.allowed_headers_extra = vec!["trace parent".into()];
    let value = config(&upstream, "no-store\r\nx-injected: 1");
    for (config, key) in [
        (origins, "`cors.allowed_origins`"),
        (extra, "`cors.allowed_headers_extra`"),
        (value, "`cache.client_cache_control`"),
    ] {
        let err = Gateway::new(config).err().expect("an error").to_string();
        assert!(err.starts_with(key), "{err}");
    }
}

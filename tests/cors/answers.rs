//! The CORS headers of every answer that is not a preflight: hits and misses from one
//! entry for several origins, every kind of answer and error, the upstream's own CORS
//! headers and `Vary: Origin` never relayed.

use std::time::Duration;

use super::*;

#[tokio::test]
async fn an_empty_list_sends_no_cors_headers() {
    let upstream = FakeUpstream::start().await;
    let (_, gw) = start(config(&upstream, &[])).await;
    let pre = preflight(&gw, "/sdk/v2/vardata", "GET", Some(APP)).await;
    assert_eq!(pre.status, StatusCode::NO_CONTENT);
    assert!(cors_headers(&pre).is_empty(), "{:?}", pre.headers);
    let got = ask(&gw, Method::GET, "/v1/vardata?user_id=u1", Some(APP)).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(cors_headers(&got).is_empty(), "{:?}", got.headers);
    // Only compression's `Accept-Encoding`: an empty list does not vary on `Origin`.
    assert_eq!(vary(&got), ["accept-encoding"], "{:?}", got.headers);
    assert_eq!(upstream.count(), 1);
}

/// Two allowed origins and one entry: each gets its own `Access-Control-Allow-Origin`, and
/// `Vary: Origin`; an origin not allowed and a server (no `Origin`) get none, from the same
/// entry; the upstream is asked once.
#[tokio::test]
async fn two_origins_share_one_entry_each_with_its_own_header() {
    let upstream = FakeUpstream::start().await;
    let (_, gw) = start(config(&upstream, &[APP, OTHER_APP])).await;
    for (path, _, query) in ROUTES {
        let target = format!("{path}?{query}");
        let first = ask(&gw, Method::GET, &target, Some(APP)).await;
        assert_eq!(first.x_cache(), "MISS", "{target}");
        assert_cors(&first, APP, true, &target);
        let second = ask(&gw, Method::GET, &target, Some(OTHER_APP)).await;
        assert_eq!(second.x_cache(), "HIT", "{target}");
        assert_eq!(second.body, first.body, "{target}");
        assert_cors(&second, OTHER_APP, true, &target);
        let again = ask(&gw, Method::GET, &target, Some(APP)).await;
        assert_eq!(again.x_cache(), "HIT", "{target}");
        assert_cors(&again, APP, true, &target);
        // Not allowed: served as usual, without CORS headers (the browser blocks it).
        let evil = ask(&gw, Method::GET, &target, Some(EVIL)).await;
        assert_eq!(evil.status, StatusCode::OK, "{target}");
        assert_eq!(evil.x_cache(), "HIT", "{target}");
        assert_eq!(evil.body, first.body, "{target}");
        assert!(
            cors_headers(&evil).is_empty(),
            "{target}: {:?}",
            evil.headers
        );
        assert!(vary(&evil).contains(&"origin".to_string()), "{target}");
        let server = ask(&gw, Method::GET, &target, None).await;
        assert_eq!(server.x_cache(), "HIT", "{target}");
        assert!(cors_headers(&server).is_empty(), "{target}");
    }
    assert_eq!(
        upstream.count(),
        ROUTES.len(),
        "one upstream request per route"
    );
}

/// Every kind of answer on the cacheable routes carries the same CORS headers and
/// `Cache-Control`, under `*` and under a list.
#[tokio::test]
async fn every_kind_of_answer_carries_the_cors_headers() {
    for (policy, allow_origin, varies) in [(&["*"][..], "*", false), (&[APP][..], APP, true)] {
        let upstream = FakeUpstream::start().await;
        let mut cfg = config(&upstream, policy);
        cfg.server.max_body_bytes = 64;
        cfg.server.max_header_bytes = 1024;
        cfg.cache.ttl_s = 1;
        cfg.cache.stale_while_revalidate_s = 60;
        let (_, gw) = start(cfg).await;
        let check = |got: &Got, status: u16, x_cache: Option<&str>, what: &str| {
            let what = format!("{policy:?} {what}");
            assert_eq!(got.status.as_u16(), status, "{what}: {:?}", got.body);
            assert_eq!(got.header("x-cache"), x_cache, "{what}");
            assert_cors(got, allow_origin, varies, &what);
            assert_eq!(got.header("cache-control"), Some("no-store"), "{what}");
        };
        let o = Some(APP);

        let miss = ask(&gw, Method::GET, "/v1/vardata?user_id=k", o).await;
        check(&miss, 200, Some("MISS"), "MISS");
        let hit = ask(&gw, Method::GET, "/v1/vardata?user_id=k", o).await;
        check(&hit, 200, Some("HIT"), "HIT");
        let head = ask(&gw, Method::HEAD, "/v1/vardata?user_id=k", o).await;
        check(&head, 200, Some("HIT"), "HEAD");
        assert!(head.body.is_empty());
        let post = send(
            &client(),
            Method::POST,
            &gw.url("/sdk/v2/vardata?v=0"),
            &[("authorization", &auth()), ("origin", APP)],
            r#"{"user_id":"k"}"#,
        )
        .await;
        check(&post, 200, Some("MISS"), "POST MISS");
        // Past its 1 s freshness, inside stale-while-revalidate (entry lifetimes are wall
        // clock; nothing to await).
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let stale = ask(&gw, Method::GET, "/v1/vardata?user_id=k", o).await;
        check(&stale, 200, Some("STALE"), "STALE");

        // The cache-buster bypasses; the upstream's answer is relayed.
        let bypass = ask(&gw, Method::GET, "/sdk/v2/vardata?v=0&d=x", o).await;
        check(&bypass, 200, Some("BYPASS"), "BYPASS");
        // Relayed upstream errors: 400 (bypass: invalid context), 401 (a miss).
        let bad_context = ask(&gw, Method::GET, "/v1/vardata?context=%5B1%5D", o).await;
        check(&bad_context, 400, Some("BYPASS"), "relayed 400");
        let denied = send(
            &client(),
            Method::GET,
            &gw.url("/v1/vardata?user_id=k"),
            &[("authorization", "Api-Key not-a-key"), ("origin", APP)],
            "",
        )
        .await;
        check(&denied, 401, Some("MISS"), "relayed 401");
        assert!(denied.header("www-authenticate").is_some(), "kept");
        upstream.update(|s| s.status = Some(StatusCode::TOO_MANY_REQUESTS));
        let limited = ask(&gw, Method::GET, "/v1/flags?x=429", o).await;
        check(&limited, 429, Some("MISS"), "relayed 429");
        upstream.update(|s| s.status = Some(StatusCode::SERVICE_UNAVAILABLE));
        let down = ask(&gw, Method::GET, "/sdk/v2/flags?v=503", o).await;
        check(&down, 503, Some("MISS"), "relayed 503");
        upstream.update(|s| {
            s.status = None;
            s.raw_body = Some("not json");
        });
        // evalgate's own errors: 502 (a 200 that is not JSON), 413, 431, 405.
        let garbage = ask(&gw, Method::GET, "/v1/vardata?user_id=garbage", o).await;
        check(&garbage, 502, Some("MISS"), "502");
        let big = send(
            &client(),
            Method::POST,
            &gw.url("/sdk/vardata"),
            &[("authorization", &auth()), ("origin", APP)],
            &"x".repeat(65),
        )
        .await;
        check(&big, 413, Some("BYPASS"), "413");
        let long = "x".repeat(1024);
        let fat = send(
            &client(),
            Method::GET,
            &gw.url("/v1/vardata?user_id=k"),
            &[("origin", APP), ("x-padding", &long)],
            "",
        )
        .await;
        check(&fat, 431, None, "431");
        let trace = ask(&gw, Method::TRACE, "/v1/vardata", o).await;
        check(&trace, 405, None, "405");
    }
}

/// 503 (the in-flight limit, with `Retry-After`, exposed) and 504 (the upstream never
/// answers) carry the CORS headers too.
#[tokio::test]
async fn overload_and_timeout_errors_carry_the_cors_headers() {
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| s.hold = Some("held"));
    let mut cfg = config(&upstream, &[APP]);
    cfg.upstream.max_inflight = 1;
    cfg.upstream.timeout_ms = 1000;
    let (_, gw) = start(cfg).await;
    let target = gw.url("/v1/vardata?user_id=held");
    let auth = auth();
    let held = tokio::spawn(async move {
        send(
            &client(),
            Method::GET,
            &target,
            &[("authorization", &auth), ("origin", APP)],
            "",
        )
        .await
    });
    upstream.wait_for(1).await;
    let overloaded = ask(&gw, Method::GET, "/v1/vardata?user_id=other", Some(APP)).await;
    assert_eq!(overloaded.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(overloaded.header("retry-after"), Some("1"));
    assert_cors(&overloaded, APP, true, "503");
    let timed_out = held.await.unwrap();
    assert_eq!(timed_out.status, StatusCode::GATEWAY_TIMEOUT);
    assert_cors(&timed_out, APP, true, "504");
    assert_eq!(timed_out.header("cache-control"), Some("no-store"));
    upstream.release_held();
}

/// The upstream's own CORS headers and `Cache-Control` are not relayed on the cacheable
/// routes (the answer would otherwise differ between a miss and a hit); elsewhere the
/// passthrough relays them as before.
#[tokio::test]
async fn the_upstreams_cors_headers_are_not_relayed() {
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| {
        s.headers = vec![
            ("access-control-allow-origin", "https://upstream.example"),
            ("access-control-allow-credentials", "true"),
            ("access-control-expose-headers", "x-upstream-secret"),
            ("cache-control", "public, max-age=600"),
            ("expires", "Thu, 01 Dec 2099 16:00:00 GMT"),
        ]
    });
    let (_, gw) = start(config(&upstream, &[APP])).await;
    let o = Some(APP);
    let answers = [
        ask(&gw, Method::GET, "/v1/vardata?user_id=u", o).await,
        ask(&gw, Method::GET, "/v1/vardata?user_id=u", o).await,
        ask(&gw, Method::GET, "/sdk/v2/vardata?v=0&d=1", o).await,
        send(
            &client(),
            Method::GET,
            &gw.url("/v1/vardata?user_id=u"),
            &[("authorization", "Api-Key not-a-key"), ("origin", APP)],
            "",
        )
        .await,
    ];
    let kinds: Vec<_> = answers.iter().map(|a| a.x_cache().to_string()).collect();
    assert_eq!(kinds, ["MISS", "HIT", "BYPASS", "MISS"]);
    for got in &answers {
        let what = format!("{} {}", got.status, got.x_cache());
        assert_cors(got, APP, true, &what);
        assert_eq!(
            got.headers
                .get_all("access-control-allow-origin")
                .iter()
                .count(),
            1,
            "{what}"
        );
        assert_eq!(got.header("cache-control"), Some("no-store"), "{what}");
        assert_eq!(got.header("expires"), None, "{what}");
    }
    let other = ask(&gw, Method::GET, "/other", o).await;
    assert_eq!(
        other.header("access-control-allow-origin"),
        Some("https://upstream.example")
    );
    assert_eq!(other.header("cache-control"), Some("public, max-age=600"));
}

/// The upstream's `Vary: Origin` goes with its CORS headers: under `*` a relayed answer
/// says no more than a hit (nothing varies on `Origin`), under a list it says it once;
/// its other `Vary` tokens stay.
#[tokio::test]
async fn the_upstreams_vary_origin_is_not_relayed() {
    for (policy, varies) in [(&["*"][..], false), (&[APP][..], true)] {
        let upstream = FakeUpstream::start().await;
        upstream.update(|s| s.headers = vec![("vary", "Origin, Accept-Encoding")]);
        let (_, gw) = start(config(&upstream, policy)).await;
        let bypass = ask(&gw, Method::GET, "/sdk/v2/vardata?v=0&d=1", Some(APP)).await;
        assert_eq!(bypass.x_cache(), "BYPASS");
        let origin = if varies { vec!["origin"] } else { vec![] };
        let mut expect = vec!["accept-encoding"];
        expect.extend(origin.iter());
        assert_eq!(vary(&bypass), expect, "{policy:?}: {:?}", bypass.headers);
        let miss = ask(&gw, Method::GET, "/v1/vardata?user_id=v", Some(APP)).await;
        let hit = ask(&gw, Method::GET, "/v1/vardata?user_id=v", Some(APP)).await;
        assert_eq!(hit.x_cache(), "HIT");
        // A stored answer also varies on `Accept-Encoding` (compression), as any hit does.
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let mut stored = origin.clone();
        stored.push("accept-encoding");
        stored.sort();
        assert_eq!(sorted(vary(&miss)), stored, "{policy:?} MISS");
        assert_eq!(sorted(vary(&hit)), stored, "{policy:?} HIT");
    }
}

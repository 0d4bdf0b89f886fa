//! Freshness and resilience: Cache-Control, stale-while-revalidate, stale-if-error,
//! negative caching of 401, purge, flag-change invalidation, connection retries.
//!
//! TTLs here are whole seconds on moka's real clock (it cannot be paused), so a few tests
//! let one or two seconds pass: the passing of time is what they test.

mod support;

use std::time::Duration;

use evalgate::gateway::PurgeScope;
use evalgate::{Config, Gateway};
use support::*;

/// A config with plain 1 s freshness and the given stale windows.
fn config(upstream: &FakeUpstream, swr: u64, sie: u64) -> Config {
    let mut config = config_for(&upstream.url());
    config.cache.ttl_s = 1;
    config.cache.stale_while_revalidate_s = swr;
    config.cache.stale_if_error_s = sie;
    config.upstream.timeout_ms = 500;
    config.upstream.connect_timeout_ms = 200;
    config
}

/// Lets the 1 s entries of [`config`] go stale.
async fn let_entries_go_stale() {
    tokio::time::sleep(Duration::from_millis(1100)).await;
}

fn version(got: &Got) -> u64 {
    got.json()["flag-echo"]["payload"]["version"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn stale_if_error_answers_from_the_entry_inside_the_window() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config(&upstream, 0, 60)).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=sie");
    let fresh = get_with_key(&c, &url, KEY).await;
    assert_eq!(fresh.x_cache(), "MISS");
    let_entries_go_stale().await;

    // 5xx, 429, a reset connection and a timeout all fall back to the stale entry.
    let failures: [fn(&mut Script); 4] = [
        |s| s.status = Some(http::StatusCode::SERVICE_UNAVAILABLE),
        |s| s.status = Some(http::StatusCode::TOO_MANY_REQUESTS),
        |s| s.reset = true,
        |s| s.delay = Duration::from_secs(2),
    ];
    for fail in failures {
        upstream.script(Script::default());
        upstream.update(fail);
        let stale = get_with_key(&c, &url, KEY).await;
        assert_eq!(stale.status, 200);
        assert_eq!(stale.x_cache(), "STALE");
        assert_eq!(stale.body, fresh.body);
        assert!(stale.header("age").unwrap().parse::<u64>().unwrap() >= 1);
    }
    // The failures did not replace the entry: the upstream recovers, the entry is refreshed.
    upstream.script(Script {
        version: 2,
        ..Script::default()
    });
    let refreshed = get_with_key(&c, &url, KEY).await;
    assert_eq!(refreshed.x_cache(), "MISS");
    assert_eq!(version(&refreshed), 2);
}

#[tokio::test]
async fn stale_if_error_outside_the_window_returns_the_error() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config(&upstream, 0, 1)).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=sie-out");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    // Fresh for 1 s, usable on error for 1 s more: at 2.2 s it is past both.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    upstream.update(|s| s.status = Some(http::StatusCode::BAD_GATEWAY));
    let got = get_with_key(&c, &url, KEY).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.x_cache(), "MISS");
    assert_eq!(&got.body[..], br#"{"scripted":502}"#);
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_once() {
    let upstream = FakeUpstream::start().await;
    let mut cfg = config(&upstream, 30, 0);
    cfg.upstream.timeout_ms = 5000;
    let gw = TestGateway::start(cfg).await;
    let url = gw.url("/v1/vardata?user_id=swr");
    let first = get_with_key(&client(), &url, KEY).await;
    assert_eq!(version(&first), 0);
    let_entries_go_stale().await;

    // The refresh will take 1 s and bring version 1; meanwhile everyone gets the old answer.
    upstream.script(Script {
        version: 1,
        delay: Duration::from_millis(1000),
        ..Script::default()
    });
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            get_with_key(&client(), &url, KEY).await
        }));
    }
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.x_cache(), "STALE");
        assert_eq!(got.body, first.body);
    }
    // All 100 were answered while the one refresh was still at the upstream.
    assert_eq!(
        upstream.count(),
        2,
        "one background refresh for 100 stale answers"
    );
    // Once the refresh lands, the new answer is served fresh.
    let mut refreshed = None;
    for _ in 0..300 {
        let got = get_with_key(&client(), &url, KEY).await;
        if got.x_cache() == "HIT" {
            refreshed = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refreshed = refreshed.expect("the refresh landed");
    assert_eq!(version(&refreshed), 1);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn cache_control_no_store_is_not_stored() {
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| s.cache_control = Some("no-store"));
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=nostore");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn cache_control_max_age_is_honoured_and_capped() {
    let upstream = FakeUpstream::start().await;
    let mut cfg = config_for(&upstream.url());
    cfg.cache.ttl_s = 600;
    cfg.cache.max_ttl_s = 1;
    let gw = TestGateway::start(cfg).await;
    let c = client();
    // max-age=1 shortens the 600 s default; max-age=600 is capped at max_ttl_s = 1.
    for (user, cc) in [("short", "max-age=1"), ("capped", "public, max-age=600")] {
        upstream.update(|s| s.cache_control = Some(cc));
        let url = gw.url(&format!("/v1/vardata?user_id={user}"));
        assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
        assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");
    }
    let_entries_go_stale().await;
    for user in ["short", "capped"] {
        let url = gw.url(&format!("/v1/vardata?user_id={user}"));
        assert_eq!(
            get_with_key(&c, &url, KEY).await.x_cache(),
            "MISS",
            "{user}"
        );
    }
    // Ignoring Cache-Control: no-store is stored anyway, for ttl_s.
    let mut cfg = config_for(&upstream.url());
    cfg.cache.ignore_upstream_cache_control = true;
    upstream.update(|s| s.cache_control = Some("no-store"));
    let gw = TestGateway::start(cfg).await;
    let url = gw.url("/v1/vardata?user_id=ignored");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");
}

#[tokio::test]
async fn a_flood_of_one_bad_key_makes_one_upstream_request() {
    let upstream = FakeUpstream::start().await;
    let mut cfg = config_for(&upstream.url());
    cfg.cache.negative_ttl_s = 30;
    let gw = TestGateway::start(cfg).await;
    let bad = "server-revoked-key-9999";
    let first = get_with_key(&client(), &gw.url("/v1/vardata?user_id=u0"), bad).await;
    assert_eq!(first.status, 401);
    let mut tasks = Vec::new();
    for worker in 0..50 {
        let base = gw.url("/v1/vardata");
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut seen = Vec::new();
            for i in 0..20 {
                let url = format!("{base}?user_id=u{worker}-{i}");
                seen.push(get_with_key(&c, &url, bad).await);
            }
            seen
        }));
    }
    let mut answered = 1;
    for t in tasks {
        for got in t.await.unwrap() {
            assert_eq!(got.status, 401);
            assert_eq!(&got.body[..], b"Invalid deployment key\n");
            assert_eq!(
                got.header("content-type"),
                Some("text/plain; charset=utf-8")
            );
            answered += 1;
        }
    }
    assert_eq!(answered, 1001);
    assert_eq!(upstream.count(), 1);
    // 400s are never cached.
    let bad_context = gw.url("/v1/vardata?user_id=u&context=%7B");
    for expected in 2..4 {
        assert_eq!(get_with_key(&client(), &bad_context, KEY).await.status, 400);
        assert_eq!(upstream.count(), expected);
    }
}

#[tokio::test]
async fn purge_drops_everything_or_one_deployment() {
    let upstream = FakeUpstream::start().await;
    let gateway = Gateway::new(config_for(&upstream.url()).validate().unwrap()).unwrap();
    let gw = TestGateway::start_gateway(gateway.clone()).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=p");
    for key in [KEY, KEY2] {
        assert_eq!(get_with_key(&c, &url, key).await.x_cache(), "MISS");
        assert_eq!(get_with_key(&c, &url, key).await.x_cache(), "HIT");
    }
    gateway.purge(&PurgeScope::Deployment(KEY.into())).await;
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(
        get_with_key(&c, &url, KEY2).await.x_cache(),
        "HIT",
        "other deployments untouched"
    );
    gateway.purge(&PurgeScope::All).await;
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(get_with_key(&c, &url, KEY2).await.x_cache(), "MISS");
}

#[tokio::test]
async fn a_flag_version_change_purges_that_deployment_only() {
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| s.flags = Some(vec![("a", 1), ("b", 4)]));
    let mut cfg = config_for(&upstream.url());
    cfg.cache.ttl_s = 3600;
    cfg.invalidation.flags_url = upstream.url();
    cfg.invalidation.poll_interval_s = 1;
    let gw = TestGateway::start(cfg).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=inv");
    for key in [KEY, KEY2] {
        assert_eq!(get_with_key(&c, &url, key).await.x_cache(), "MISS");
    }
    // Two poll rounds: the first records both deployments' versions, the second compares.
    wait_for_polls(&upstream, 4).await;

    // A failing flags endpoint purges nothing.
    upstream.update(|s| s.flags_fail = true);
    let polled = upstream.count_path("/sdk/v2/flags");
    wait_for_polls(&upstream, polled + 4).await;
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");

    // KEY's flag "b" changes version, and the upstream's answers change with it.
    upstream.update(|s| {
        s.flags_fail = false;
        s.flags = Some(vec![("a", 1), ("b", 5)]);
        s.version = 7;
    });
    let mut purged = None;
    for _ in 0..300 {
        let got = get_with_key(&c, &url, KEY).await;
        if got.x_cache() == "MISS" {
            purged = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let purged = purged.expect("the changed deployment was purged");
    assert_eq!(version(&purged), 7, "the next request gets the new answer");
    let other = get_with_key(&c, &url, KEY2).await;
    assert_eq!(other.x_cache(), "HIT", "other deployments untouched");
    assert_eq!(version(&other), 0);
}

/// Waits until the flags endpoint has been polled `n` times in all.
async fn wait_for_polls(upstream: &FakeUpstream, n: usize) {
    for _ in 0..1000 {
        if upstream.count_path("/sdk/v2/flags") >= n {
            return;
        }
        upstream.wait_for(upstream.count() + 1).await;
    }
    panic!("the flags endpoint was not polled {n} times");
}

#[tokio::test]
async fn a_pooled_connection_closed_by_the_upstream_is_retried_once() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    assert_eq!(
        get_with_key(&c, &gw.url("/v1/vardata?user_id=r0"), KEY)
            .await
            .status,
        200
    );
    upstream.reset_next(1);
    let got = get_with_key(&c, &gw.url("/v1/vardata?user_id=r1"), KEY).await;
    assert_eq!(got.status, 200, "retried on another connection");
    assert_eq!(upstream.count(), 3);
    // Twice in a row is not retried again: the error reaches the client.
    upstream.reset_next(2);
    let got = get_with_key(&c, &gw.url("/v1/vardata?user_id=r2"), KEY).await;
    assert_eq!(got.status, 502);
}

#[tokio::test]
async fn a_body_cut_short_is_a_502_and_not_stored() {
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| s.cut_body = true);
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=cut");
    assert_eq!(get_with_key(&c, &url, KEY).await.status, 502);
    upstream.update(|s| s.cut_body = false);
    let got = get_with_key(&c, &url, KEY).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.x_cache(), "MISS");
}

#[tokio::test]
async fn a_refreshed_entry_gets_its_own_lifetime() {
    let upstream = FakeUpstream::start().await;
    // Fresh for 1 s, kept 2 s more for errors: 3 s in all from each fetch.
    let gw = TestGateway::start(config(&upstream, 0, 2)).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=life");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    let_entries_go_stale().await;
    upstream.update(|s| s.version = 1);
    let refreshed = get_with_key(&c, &url, KEY).await;
    assert_eq!((refreshed.x_cache(), version(&refreshed)), ("MISS", 1));
    // 3.4 s after the first fetch (2.3 s after the refresh) the first lifetime is over,
    // the refreshed one is not: the upstream fails and the refreshed answer is served.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    upstream.update(|s| s.status = Some(http::StatusCode::SERVICE_UNAVAILABLE));
    let got = get_with_key(&c, &url, KEY).await;
    assert_eq!(got.x_cache(), "STALE");
    assert_eq!(version(&got), 1);
}

#[tokio::test]
async fn admin_purge_endpoint_with_token() {
    let upstream = FakeUpstream::start().await;
    let mut cfg = config_for(&upstream.url());
    cfg.admin.token = "s3cret-admin-token".into();
    let gateway = Gateway::new(cfg.validate().unwrap()).unwrap();
    let gw = TestGateway::start_with_admin(gateway).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=ap");
    for key in [KEY, KEY2] {
        assert_eq!(get_with_key(&c, &url, key).await.x_cache(), "MISS");
    }
    // No token, a wrong one: 401 JSON, nothing purged.
    for auth in [None, Some("Bearer wrong"), Some("s3cret-admin-token")] {
        let denied = admin_post(&gw, "/admin/purge", auth).await;
        assert_eq!(denied.status, 401);
        assert!(denied.json()["error"].is_string());
    }
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");

    let one = format!("/admin/purge?deployment={KEY}");
    let done = admin_post(&gw, &one, Some("Bearer s3cret-admin-token")).await;
    assert_eq!(done.status, 200);
    assert_eq!(done.json()["purged"], "deployment");
    assert!(
        !done.body.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
        "the key is masked"
    );
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(get_with_key(&c, &url, KEY2).await.x_cache(), "HIT");

    let all = admin_post(&gw, "/admin/purge", Some("Bearer s3cret-admin-token")).await;
    assert_eq!(all.json()["purged"], "all");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(get_with_key(&c, &url, KEY2).await.x_cache(), "MISS");
    // Never on the public port.
    let public = send(&c, http::Method::POST, &gw.url("/admin/purge"), &[], "").await;
    assert_eq!(
        public.x_cache(),
        "BYPASS",
        "the public port forwards it like any other path"
    );
    assert_eq!(upstream.last().path_and_query, "/admin/purge");
}

async fn admin_post(gw: &TestGateway, path: &str, auth: Option<&str>) -> Got {
    let headers: Vec<(&str, &str)> = auth.map(|a| vec![("authorization", a)]).unwrap_or_default();
    send(
        &client(),
        http::Method::POST,
        &gw.admin_url(path),
        &headers,
        "",
    )
    .await
}

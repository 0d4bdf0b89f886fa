//! `upstream.tracking = "never"`: every upstream request (cache fills, pipelined fills,
//! background refreshes, passthroughs) says `no-track` for assignments and exposures,
//! whatever the client sent, and the client's tracking headers neither split nor bypass
//! the cache. `"passthrough"` (the default) keeps today's behaviour.

mod support;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use evalgate::config::Tracking;
use evalgate::{Config, Gateway};
use http::Method;
use support::*;

/// What a client that wants everything tracked sends.
const TRACKED: [(&str, &str); 2] = [
    ("x-amp-exp-track", "track"),
    ("x-amp-exp-exposure-track", "track"),
];

fn never(upstream: &FakeUpstream) -> Config {
    let mut config = config_for(&upstream.url());
    config.upstream.tracking = Tracking::Never;
    config
}

/// `Api-Key KEY` plus `extra`.
fn with_key<'a>(auth: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut headers = vec![("authorization", auth)];
    headers.extend_from_slice(extra);
    headers
}

/// Every request the upstream saw carries both tracking headers, once each, as `no-track`.
fn assert_all_no_track(upstream: &FakeUpstream, at_least: usize) {
    let seen = upstream.requests();
    assert!(seen.len() >= at_least, "{} upstream requests", seen.len());
    for request in &seen {
        for name in ["x-amp-exp-track", "x-amp-exp-exposure-track"] {
            let values: Vec<_> = request.headers.get_all(name).iter().collect();
            assert_eq!(
                values,
                ["no-track"],
                "{name} on {} {}",
                request.method,
                request.path_and_query
            );
        }
    }
}

/// A request to send (method, path, headers, body) and the `X-Cache` it must get.
type Sent<'a> = (Method, &'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);

/// Fills of each route shape, a cache-buster, a POST bypass and an uncached path, all sent
/// with tracking asked for, all reach the upstream as `no-track`.
async fn fills_and_passthroughs_say_no_track(config: Config) {
    let gw = TestGateway::start(config).await;
    let c = client();
    let auth = format!("Api-Key {KEY}");
    let tracked = with_key(&auth, &TRACKED);
    let user = URL_SAFE_NO_PAD.encode(br#"{"user_id":"u1"}"#);
    let mut sdk_get = tracked.clone();
    sdk_get.push(("x-amp-exp-user", &user));
    let requests: [Sent; 6] = [
        (
            Method::GET,
            "/v1/vardata?user_id=fill",
            &tracked,
            "",
            "MISS",
        ),
        (Method::GET, "/sdk/v2/vardata?v=0", &sdk_get, "", "MISS"),
        (Method::GET, "/sdk/v2/flags?v=0", &tracked, "", "MISS"),
        // Passthroughs: the cache-buster, a POST on a GET route, a path evalgate does not
        // cache.
        (
            Method::GET,
            "/v1/vardata?user_id=fill&d=1",
            &tracked,
            "",
            "BYPASS",
        ),
        (
            Method::POST,
            "/v1/vardata?user_id=post",
            &tracked,
            "{}",
            "BYPASS",
        ),
        (Method::GET, "/some/other/path", &tracked, "", "BYPASS"),
    ];
    for (method, path, headers, body, expected) in requests {
        let got = send(&c, method.clone(), &gw.url(path), headers, body).await;
        assert_eq!(got.status, 200, "{method} {path}: {:?}", got.body);
        assert_eq!(got.x_cache(), expected, "{method} {path}");
    }
}

#[tokio::test]
async fn never_fills_and_passthroughs_carry_no_track() {
    let upstream = FakeUpstream::start().await;
    fills_and_passthroughs_say_no_track(never(&upstream)).await;
    assert_all_no_track(&upstream, 6);
}

/// The pipelined head is written from the key too (`upstream.pipeline_depth` > 1).
#[tokio::test]
async fn never_pipelined_fills_carry_no_track() {
    let upstream = FakeUpstream::start().await;
    let mut config = never(&upstream);
    config.upstream.pipeline_depth = 4;
    fills_and_passthroughs_say_no_track(config).await;
    assert_all_no_track(&upstream, 6);
}

/// A background refresh (stale-while-revalidate) is built from the key as well.
#[tokio::test]
async fn never_background_refresh_carries_no_track() {
    let upstream = FakeUpstream::start().await;
    let mut config = never(&upstream);
    config.cache.ttl_s = 1;
    config.cache.stale_while_revalidate_s = 60;
    let gw = TestGateway::start(config).await;
    let c = client();
    let auth = format!("Api-Key {KEY}");
    let url = gw.url("/v1/vardata?user_id=refresh");
    let tracked = with_key(&auth, &TRACKED);
    let first = send(&c, Method::GET, &url, &tracked, "").await;
    assert_eq!(first.x_cache(), "MISS");
    // moka's clock cannot be paused: the entry goes stale in real time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = send(&c, Method::GET, &url, &tracked, "").await;
    assert_eq!(stale.x_cache(), "STALE");
    tokio::time::timeout(Duration::from_secs(10), upstream.wait_for(2))
        .await
        .expect("the refresh reaches the upstream");
    assert_eq!(upstream.count(), 2);
    assert_all_no_track(&upstream, 2);
}

/// Tracked, untracked, no header and exposure tracking: one entry, one upstream request.
#[tokio::test]
async fn never_tracked_and_untracked_requests_share_one_entry() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(never(&upstream)).await;
    let c = client();
    let auth = format!("Api-Key {KEY}");
    let url = gw.url("/v1/vardata?user_id=shared");
    let variants: [&[(&str, &str)]; 5] = [
        &[("x-amp-exp-track", "track")],
        &[("x-amp-exp-track", "no-track")],
        &[],
        &[("x-amp-exp-exposure-track", "track")],
        // Even headers that would bypass in passthrough mode (repeated, unknown value).
        &[("x-amp-exp-track", "a"), ("x-amp-exp-track", "b")],
    ];
    let mut bodies = Vec::new();
    for (i, extra) in variants.into_iter().enumerate() {
        let got = send(&c, Method::GET, &url, &with_key(&auth, extra), "").await;
        assert_eq!(got.status, 200);
        assert_eq!(
            got.x_cache(),
            if i == 0 { "MISS" } else { "HIT" },
            "{extra:?}"
        );
        bodies.push(got.body);
    }
    assert_eq!(upstream.count(), 1);
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_all_no_track(&upstream, 1);
}

/// The default forwards the client's tracking headers: they split the cache, and exposure
/// tracking goes around it, as before.
#[tokio::test]
async fn passthrough_keeps_the_clients_tracking_headers() {
    let upstream = FakeUpstream::start().await;
    let config = config_for(&upstream.url());
    assert_eq!(config.upstream.tracking, Tracking::Passthrough);
    let gw = TestGateway::start(config).await;
    let c = client();
    let auth = format!("Api-Key {KEY}");
    let url = gw.url("/v1/vardata?user_id=split");
    let track = send(&c, Method::GET, &url, &with_key(&auth, &[TRACKED[0]]), "").await;
    let none = send(&c, Method::GET, &url, &with_key(&auth, &[]), "").await;
    let exposure = send(&c, Method::GET, &url, &with_key(&auth, &TRACKED), "").await;
    assert_eq!(
        [track.x_cache(), none.x_cache(), exposure.x_cache()],
        ["MISS", "MISS", "BYPASS"]
    );
    let seen = upstream.requests();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].headers["x-amp-exp-track"], "track");
    assert!(!seen[1].headers.contains_key("x-amp-exp-track"));
    assert!(!seen[0].headers.contains_key("x-amp-exp-exposure-track"));
    assert_eq!(seen[2].headers["x-amp-exp-exposure-track"], "track");
}

/// `/admin/stats` says which mode is on.
#[tokio::test]
async fn admin_stats_show_the_tracking_mode() {
    let upstream = FakeUpstream::start().await;
    for (tracking, shown) in [
        (Tracking::Never, "never"),
        (Tracking::Passthrough, "passthrough"),
    ] {
        let mut config = config_for(&upstream.url());
        config.upstream.tracking = tracking;
        let gateway = Gateway::new(config.validate().unwrap()).unwrap();
        let gw = TestGateway::start_with_admin(gateway).await;
        let stats = send(
            &client(),
            Method::GET,
            &gw.admin_url("/admin/stats"),
            &[],
            "",
        )
        .await;
        assert_eq!(stats.json()["upstream"]["tracking"], shown);
    }
}

/// The start-up line says the mode is on (and how the budget is set), and one more line
/// spells out what `never` does.
#[tokio::test]
async fn the_start_up_lines_say_tracking_is_never() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let upstream = FakeUpstream::start().await;
    let dir = support::cli::TempDir::new();
    dir.config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"\"\n[upstream]\nurl = \"{}\"\n\
         tracking = \"never\"\nbudget_rps = 5\nbudget_burst = 7\n",
        upstream.url()
    ));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_evalgate"))
        .args(["--config", "config.toml", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .env_remove("EVALGATE_LISTEN")
        .env_remove("EVALGATE_UPSTREAM")
        .env_remove("EVALGATE_ADMIN_LISTEN")
        .current_dir(&dir.0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the evalgate binary");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut started, mut spelled_out) = (None, false);
    tokio::time::timeout(support::cli::NO_HANG, async {
        while started.is_none() || !spelled_out {
            let line = lines.next_line().await.unwrap().expect("a log line");
            let line: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            let message = line["message"].as_str().unwrap_or_default();
            if message.contains("started") {
                started = Some(line.clone());
            }
            spelled_out |= message.contains("X-Amp-Exp-Exposure-Track: no-track");
        }
    })
    .await
    .expect("the start-up lines arrive");
    let started = started.unwrap();
    assert_eq!(started["tracking"], "never", "{started}");
    assert_eq!(started["budget"], "5/s burst 7 enforce", "{started}");
    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

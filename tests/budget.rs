//! The upstream budget (`upstream.budget_rps`, `budget_burst`, `budget_mode`): a token
//! bucket per deployment key in front of every request that would go upstream.
//!
//! Bounds are checked against time the test measures around the traffic (an upper bound
//! on what the bucket saw), never against wall-clock thresholds.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use evalgate::config::BudgetMode;
use evalgate::metrics::BudgetOutcome;
use evalgate::{Config, Gateway};
use http::Method;
use support::*;
use tokio::time::Instant;

/// Generous bound proving "does not hang", never a speed requirement.
const NO_HANG: Duration = Duration::from_secs(10);

fn budget(upstream: &FakeUpstream, rps: f64, burst: u32, mode: BudgetMode) -> Config {
    let mut config = config_for(&upstream.url());
    config.upstream.budget_rps = rps;
    config.upstream.budget_burst = burst;
    config.upstream.budget_mode = mode;
    config
}

/// The gateway (a handle kept to read its metrics) served with its admin listener.
async fn start(config: Config) -> (Gateway, TestGateway) {
    let gateway = Gateway::new(config.validate().unwrap()).unwrap();
    let gw = TestGateway::start_with_admin(gateway.clone()).await;
    (gateway, gw)
}

/// A 429 from the budget: evalgate's JSON error and a `Retry-After` of whole seconds ≥ 1.
#[track_caller]
fn assert_over_budget(got: &Got) -> u64 {
    assert_eq!(got.status, 429, "{:?}", got.body);
    assert_eq!(got.header("content-type"), Some("application/json"));
    let message = got.json()["error"].as_str().unwrap().to_string();
    assert!(message.contains("budget"), "{message}");
    let retry: u64 = got.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    retry
}

/// `/metrics` as `series` → value.
async fn scrape(gw: &TestGateway) -> HashMap<String, f64> {
    let text = send(&client(), Method::GET, &gw.admin_url("/metrics"), &[], "").await;
    String::from_utf8(text.body.to_vec())
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

fn budget_series(deployment: &str, outcome: &str) -> String {
    format!("evalgate_upstream_budget_total{{deployment=\"{deployment}\",outcome=\"{outcome}\"}}")
}

#[tokio::test]
async fn enforce_a_burst_of_misses_beyond_the_bucket_gets_429() {
    let upstream = FakeUpstream::start().await;
    let (rps, burst, n) = (1.0, 3, 12);
    let (gateway, gw) = start(budget(&upstream, rps, burst, BudgetMode::Enforce)).await;
    let c = client();
    let started = Instant::now();
    let mut answers = Vec::new();
    for i in 0..n {
        let url = gw.url(&format!("/v1/vardata?user_id=burst-{i}"));
        answers.push(get_with_key(&c, &url, KEY).await);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = upstream.count();
    // The burst goes; past it, at most the rate times the time the test took.
    assert!(sent >= burst as usize, "{sent}");
    let bound = burst as usize + (rps * elapsed).floor() as usize;
    assert!(sent <= bound, "{sent} upstream requests > {bound}");
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, sent);
    for refused in answers.iter().filter(|a| a.status != 200) {
        assert_eq!(refused.x_cache(), "MISS");
        assert_over_budget(refused);
    }
    let m = gateway.metrics().budget();
    assert_eq!(m.count(BudgetOutcome::Allowed) as usize, sent);
    assert_eq!(m.count(BudgetOutcome::Rejected) as usize, n - sent);
    let metrics = scrape(&gw).await;
    assert_eq!(
        metrics[&budget_series("…0001", "rejected")] as usize,
        n - sent
    );
    assert_eq!(metrics[&budget_series("…0001", "allowed")] as usize, sent);
}

/// Past freshness but within `cache.stale_if_error_s`, an over-budget fill answers from
/// the stale entry; a key with nothing stored gets the 429.
#[tokio::test]
async fn enforce_a_key_with_a_stale_entry_gets_stale_instead_of_429() {
    let upstream = FakeUpstream::start().await;
    let mut config = budget(&upstream, 0.01, 1, BudgetMode::Enforce);
    config.cache.ttl_s = 1;
    config.cache.stale_if_error_s = 3600;
    let (gateway, gw) = start(config).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=stale");
    let fresh = get_with_key(&c, &url, KEY).await;
    assert_eq!(fresh.x_cache(), "MISS");
    // moka's clock cannot be paused: the entry goes stale in real time.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = get_with_key(&c, &url, KEY).await;
    assert_eq!(stale.status, 200);
    assert_eq!(stale.x_cache(), "STALE");
    assert_eq!(stale.body, fresh.body);
    let other = get_with_key(&c, &gw.url("/v1/vardata?user_id=nothing"), KEY).await;
    // 0.01 tokens a second: the next one is 100 s away at most.
    let retry = assert_over_budget(&other);
    assert!(retry <= 100, "{retry}");
    assert_eq!(upstream.count(), 1);
    let m = gateway.metrics().budget();
    assert_eq!(m.count(BudgetOutcome::Stale), 1);
    assert_eq!(m.count(BudgetOutcome::Rejected), 1);
}

#[tokio::test]
async fn two_deployment_keys_have_independent_buckets() {
    let upstream = FakeUpstream::start().await;
    let (_, gw) = start(budget(&upstream, 0.01, 1, BudgetMode::Enforce)).await;
    let c = client();
    let get = |key: &'static str, user: &str| {
        let url = gw.url(&format!("/v1/vardata?user_id={user}"));
        let c = c.clone();
        async move { get_with_key(&c, &url, key).await }
    };
    assert_eq!(get(KEY, "a").await.status, 200);
    assert_over_budget(&get(KEY, "b").await);
    // KEY's empty bucket does not touch KEY2's.
    assert_eq!(get(KEY2, "a").await.status, 200);
    assert_over_budget(&get(KEY2, "c").await);
    assert_eq!(upstream.count(), 2);
    // A hit needs no token.
    assert_eq!(get(KEY, "a").await.x_cache(), "HIT");
    let metrics = scrape(&gw).await;
    for tail in ["…0001", "…0002"] {
        assert_eq!(metrics[&budget_series(tail, "allowed")], 1.0);
        assert_eq!(metrics[&budget_series(tail, "rejected")], 1.0);
    }
}

/// Concurrent identical misses are one upstream request, and so one token.
#[tokio::test]
async fn coalesced_misses_take_one_token() {
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| s.hold = Some("user_id=together"));
    let (gateway, gw) = start(budget(&upstream, 0.01, 2, BudgetMode::Enforce)).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=together");
    let waiting: Vec<_> = (0..8)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { get_with_key(&c, &url, KEY).await })
        })
        .collect();
    tokio::time::timeout(NO_HANG, upstream.wait_for(1))
        .await
        .expect("the fill reaches the upstream");
    // Held there: every other request either joins that fill or, if it comes in after the
    // fill landed, hits its entry. Neither goes upstream, neither takes a token.
    upstream.release_held();
    let mut hits = 0;
    for answer in waiting {
        let got = answer.await.unwrap();
        assert_eq!(got.status, 200, "{:?}", got.body);
        hits += usize::from(got.x_cache() == "HIT");
    }
    let coalesced = coalesced(&gw).await as usize;
    assert_eq!(coalesced + hits, 7);
    assert_eq!(upstream.count(), 1);
    assert_eq!(gateway.metrics().budget().count(BudgetOutcome::Allowed), 1);
    // One token left of two.
    let next = get_with_key(&c, &gw.url("/v1/vardata?user_id=next"), KEY).await;
    assert_eq!(next.status, 200);
    assert_over_budget(&get_with_key(&c, &gw.url("/v1/vardata?user_id=last"), KEY).await);
}

async fn coalesced(gw: &TestGateway) -> f64 {
    scrape(gw)
        .await
        .get("evalgate_coalesced_total")
        .copied()
        .unwrap_or(0.0)
}

/// A passthrough (here the SDKs' cache-buster) takes a token too, and gets the 429.
#[tokio::test]
async fn enforce_passthroughs_are_budgeted() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(budget(&upstream, 0.01, 1, BudgetMode::Enforce)).await;
    let c = client();
    let first = get_with_key(&c, &gw.url("/v1/vardata?user_id=u&d=1"), KEY).await;
    assert_eq!((first.status.as_u16(), first.x_cache()), (200, "BYPASS"));
    let second = get_with_key(&c, &gw.url("/v1/vardata?user_id=u&d=2"), KEY).await;
    assert_eq!(second.x_cache(), "BYPASS");
    assert_over_budget(&second);
    assert_eq!(upstream.count(), 1);
    let m = gateway.metrics().budget();
    assert_eq!(m.count(BudgetOutcome::Rejected), 1);
}

/// Over budget, a background refresh is skipped; the client still gets the stale entry.
#[tokio::test]
async fn enforce_skips_a_refresh_over_budget() {
    let upstream = FakeUpstream::start().await;
    let mut config = budget(&upstream, 0.01, 1, BudgetMode::Enforce);
    config.cache.ttl_s = 1;
    config.cache.stale_while_revalidate_s = 3600;
    let (gateway, gw) = start(config).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=refresh");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "STALE");
    let m = gateway.metrics().budget();
    tokio::time::timeout(NO_HANG, async {
        while m.count(BudgetOutcome::RefreshSkipped) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the refresh is tried and skipped");
    assert_eq!(gateway.flights_in_progress(), 0);
    assert_eq!(upstream.count(), 1);
}

/// `log`: everything goes upstream; what was over budget is counted.
#[tokio::test]
async fn log_mode_sends_everything_and_counts_the_excess() {
    let upstream = FakeUpstream::start().await;
    let (rps, burst, n) = (0.01, 2, 7);
    let (gateway, gw) = start(budget(&upstream, rps, burst, BudgetMode::Log)).await;
    let c = client();
    for i in 0..n {
        let got = get_with_key(&c, &gw.url(&format!("/v1/vardata?user_id=log-{i}")), KEY).await;
        assert_eq!((got.status.as_u16(), got.x_cache()), (200, "MISS"));
    }
    assert_eq!(upstream.count(), n);
    let m = gateway.metrics().budget();
    // 0.01 tokens a second: no token comes back while the test runs (well under 100 s).
    assert_eq!(m.count(BudgetOutcome::Allowed), u64::from(burst));
    assert_eq!(m.count(BudgetOutcome::Logged), n as u64 - u64::from(burst));
    let metrics = scrape(&gw).await;
    assert_eq!(
        metrics[&budget_series("…0001", "over_budget_logged")],
        (n as u64 - u64::from(burst)) as f64
    );
    let stats = send(&c, Method::GET, &gw.admin_url("/admin/stats"), &[], "").await;
    let b = &stats.json()["upstream"]["budget"];
    assert_eq!(b["mode"], "log");
    assert_eq!(
        b["outcomes"]["over_budget_logged"],
        n as u64 - u64::from(burst)
    );
    assert_eq!(b["deployments"], 1);
}

/// Off by default: no bucket, nothing counted, `/admin/stats` says `null`.
#[tokio::test]
async fn off_by_default() {
    let upstream = FakeUpstream::start().await;
    let config = config_for(&upstream.url());
    assert_eq!(config.upstream.budget_rps, 0.0);
    let (gateway, gw) = start(config).await;
    let c = client();
    for i in 0..30 {
        let got = get_with_key(&c, &gw.url(&format!("/v1/vardata?user_id=off-{i}")), KEY).await;
        assert_eq!(got.status, 200);
    }
    assert!(gateway.budget().is_none());
    let stats = send(&c, Method::GET, &gw.admin_url("/admin/stats"), &[], "").await;
    assert!(stats.json()["upstream"]["budget"].is_null());
}

/// A request the simulation answers in the upstream's place, or that evalgate's own
/// in-flight limit refuses, never reaches the upstream, so it costs no token: with one
/// token and every miss given a simulated 429, each client gets the simulated 429 (the
/// upstream would have been asked), never the budget's.
#[tokio::test]
async fn requests_that_never_reach_the_upstream_cost_no_token() {
    let upstream = FakeUpstream::start().await;
    let mut config = budget(&upstream, 0.001, 1, BudgetMode::Enforce);
    config.simulation.rate_429 = 1.0;
    let (gateway, gw) = start(config).await;
    let c = client();
    for i in 0..3 {
        let got = get_with_key(&c, &gw.url(&format!("/v1/vardata?user_id=sim-{i}")), KEY).await;
        assert_eq!(got.status, 429, "{:?}", got.body);
        let message = got.json()["error"].as_str().unwrap().to_string();
        assert!(message.contains("simulated"), "request {i}: {message}");
    }
    assert_eq!(upstream.count(), 0);
    let m = gateway.metrics().budget();
    assert_eq!(m.count(BudgetOutcome::Rejected), 0);
    assert_eq!(m.count(BudgetOutcome::Allowed), 0);
}

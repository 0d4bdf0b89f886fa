//! A `[simulation]` profile over 10,000 requests, in-process through `Gateway::handle`
//! on paused tokio time (a simulated delay passes in no wall-clock time, and the elapsed
//! paused time of a request is its simulated delay, rounded up to tokio's millisecond
//! timer): with a fixed seed, each
//! failure's share of the answers is within binomial tolerance, the latency percentiles
//! are the configured ones, and the metrics count what the clients got. Also: a simulated
//! 5xx lets stale-if-error serve the stored entry, like a real one.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use evalgate::config::{AppliesTo, SimulationConfig};
use evalgate::simulation::Unanswered;
use evalgate::{Config, Gateway};
use http::Request;
use http_body_util::{BodyExt, Empty};
use tokio::time::Instant;

const N: usize = 10_000;
const DEMO_KEY: &str = "server-evalgate-demo-key";
const P50_MS: u64 = 60;
const P99_MS: u64 = 300;

/// The embedded engine on the shipped flags, with `profile`.
fn embedded(profile: SimulationConfig) -> Gateway {
    let mut config = Config::default();
    config.upstream.url = "embedded".into();
    config.upstream.timeout_ms = 10_000;
    // Fresh for the whole run's paused time (every delay and hold advances it).
    config.cache.ttl_s = 86_400;
    let flags = Path::new(env!("CARGO_MANIFEST_DIR")).join("flags.json");
    config.embedded.flags_file = flags.display().to_string();
    config.embedded.deployment_keys = vec![DEMO_KEY.into()];
    config.simulation = profile;
    Gateway::new(config.validate().expect("valid")).unwrap()
}

fn profile(applies_to: AppliesTo) -> SimulationConfig {
    SimulationConfig {
        latency_p50_ms: P50_MS,
        latency_p99_ms: P99_MS,
        latency_max_ms: 5_000,
        rate_429: 0.05,
        rate_5xx: 0.03,
        rate_timeout: 0.02,
        rate_reset: 0.01,
        timeout_hold_ms: 20_000,
        applies_to,
        seed: 2026,
        ..SimulationConfig::default()
    }
}

/// What one request got: its status (0: no answer), and its paused-time duration.
async fn get(gateway: &Gateway, user: &str) -> (u16, Duration) {
    let request = Request::get(format!("/v1/vardata?user_id={user}"))
        .header("authorization", format!("Api-Key {DEMO_KEY}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let started = Instant::now();
    let response = gateway.handle(request).await;
    let elapsed = started.elapsed();
    let status = match response.extensions().get::<Unanswered>() {
        Some(_) => 0,
        None => response.status().as_u16(),
    };
    let _ = response.into_body().collect().await.unwrap();
    (status, elapsed)
}

/// Asserts `count` of `N` is within five standard deviations of `N · p`.
fn within_binomial(what: &str, count: usize, p: f64) {
    let expected = N as f64 * p;
    let sigma = (N as f64 * p * (1.0 - p)).sqrt();
    assert!(
        (count as f64 - expected).abs() <= 5.0 * sigma,
        "{what}: {count} of {N}, {expected} expected"
    );
}

/// Asserts the p50 and p99 of `delays` are the configured ones within five standard
/// errors of an empirical log-normal quantile, plus the millisecond tokio's timer rounds
/// a sleep up to.
fn percentiles_fit(mut delays: Vec<f64>) {
    delays.sort_by(f64::total_cmp);
    let n = delays.len();
    let at = |q: f64| delays[((n as f64 * q).ceil() as usize).min(n) - 1];
    let sigma = (P99_MS as f64 / P50_MS as f64).ln() / 2.326_348;
    let tol = |q: f64, z: f64| {
        let density = (-z * z / 2.0f64).exp() / (2.0 * std::f64::consts::PI).sqrt();
        (5.0 * sigma * (q * (1.0 - q) / n as f64).sqrt() / density).exp() - 1.0
    };
    let (p50, p99) = (at(0.50), at(0.99));
    let fits = |got: f64, want: u64, tol: f64| (got - want as f64).abs() <= want as f64 * tol + 1.0;
    assert!(fits(p50, P50_MS, tol(0.5, 0.0)), "p50 {p50} ms");
    assert!(fits(p99, P99_MS, tol(0.99, 2.326_348)), "p99 {p99} ms");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::test(start_paused = true)]
async fn misses_over_10k_requests_follow_the_profile() {
    let config = profile(AppliesTo::Misses);
    let gateway = embedded(config.clone());
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    let mut delays = Vec::with_capacity(N);
    for i in 0..N {
        // Every user is new: every request is a miss, one exchange, one draw.
        let (status, elapsed) = get(&gateway, &format!("user-{i}")).await;
        *by_status.entry(status).or_default() += 1;
        // Request i waited for draw i's delay (a simulated timeout: upstream.timeout_ms).
        let drawn = gateway.simulation().unwrap().draw_at(i as u64).delay;
        let waited = if status == 504 {
            Duration::from_secs(10)
        } else {
            drawn
        };
        let late = elapsed.checked_sub(waited).expect("not before the delay");
        assert!(
            late <= Duration::from_millis(1),
            "{i}: {elapsed:?} for {waited:?}"
        );
        if status != 504 {
            delays.push(ms(elapsed));
        }
    }
    let n = |status| by_status.get(&status).copied().unwrap_or(0);
    within_binomial("429", n(429), config.rate_429);
    within_binomial("503", n(503), config.rate_5xx);
    within_binomial("504 (timeout)", n(504), config.rate_timeout);
    within_binomial("502 (reset)", n(502), config.rate_reset);
    assert_eq!(
        n(200) + n(429) + n(503) + n(504) + n(502),
        N,
        "{by_status:?}"
    );
    percentiles_fit(delays);
    // The metrics say what the clients got, and the embedded engine answered the rest.
    let counts = gateway.metrics().simulation().counts();
    assert_eq!(
        counts,
        [
            N as u64,
            n(429) as u64,
            n(503) as u64,
            n(504) as u64,
            n(502) as u64
        ]
    );
    assert_eq!(gateway.simulation().unwrap().draws(), N as u64);
}

#[tokio::test(start_paused = true)]
async fn all_over_10k_requests_follow_the_profile_hits_included() {
    let config = profile(AppliesTo::All);
    let gateway = embedded(config.clone());
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    let mut delays = Vec::with_capacity(N);
    for i in 0..N {
        // Ten users: nearly every request that gets through is a cache hit.
        let (status, elapsed) = get(&gateway, &format!("user-{}", i % 10)).await;
        *by_status.entry(status).or_default() += 1;
        match status {
            // No answer: a reset after the delay, or a timeout after the delay and the hold.
            0 if elapsed >= Duration::from_secs(20) => {
                delays.push(ms(elapsed - Duration::from_secs(20)));
            }
            _ => delays.push(ms(elapsed)),
        }
    }
    let n = |status| by_status.get(&status).copied().unwrap_or(0);
    within_binomial("429", n(429), config.rate_429);
    within_binomial("503", n(503), config.rate_5xx);
    within_binomial("no answer", n(0), config.rate_timeout + config.rate_reset);
    assert_eq!(n(200) + n(429) + n(503) + n(0), N, "{by_status:?}");
    percentiles_fit(delays);
    let counts = gateway.metrics().simulation().counts();
    assert_eq!(counts[..3], [N as u64, n(429) as u64, n(503) as u64]);
    assert_eq!(counts[3] + counts[4], n(0) as u64);
    within_binomial("timeout", counts[3] as usize, config.rate_timeout);
    // Simulated answers never reached evalgate's pipeline: its counts hold the rest.
    let totals = gateway.metrics().totals();
    assert_eq!(totals.requests, n(200) as u64);
    assert_eq!(totals.misses, 10);
}

#[tokio::test(start_paused = true)]
async fn a_simulated_5xx_serves_the_stale_entry() {
    // A seed whose first draw passes and whose second is a 503.
    let config = |seed| SimulationConfig {
        rate_5xx: 0.5,
        seed,
        ..SimulationConfig::default()
    };
    let seed = (0..)
        .find(|&seed| {
            let draws = embedded(config(seed));
            let sim = draws.simulation().unwrap();
            sim.draw_at(0).failure.is_none() && sim.draw_at(1).failure.is_some()
        })
        .unwrap();
    let mut whole = Config::default();
    whole.cache.ttl_s = 1;
    whole.cache.stale_while_revalidate_s = 0;
    whole.cache.stale_if_error_s = 60;
    let gateway = {
        let mut c = whole;
        c.upstream.url = "embedded".into();
        let flags = Path::new(env!("CARGO_MANIFEST_DIR")).join("flags.json");
        c.embedded.flags_file = flags.display().to_string();
        c.embedded.deployment_keys = vec![DEMO_KEY.into()];
        c.simulation = config(seed);
        Gateway::new(c.validate().unwrap()).unwrap()
    };
    let request = || {
        Request::get("/v1/vardata?user_id=u1")
            .header("authorization", format!("Api-Key {DEMO_KEY}"))
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let first = gateway.handle(request()).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["x-cache"], "MISS");
    tokio::time::advance(Duration::from_secs(2)).await;
    let stale = gateway.handle(request()).await;
    assert_eq!(
        stale.status(),
        200,
        "the stored entry, not the simulated 503"
    );
    assert_eq!(stale.headers()["x-cache"], "STALE");
    assert_eq!(gateway.metrics().simulation().counts()[2], 1);
}

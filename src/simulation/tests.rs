//! The draw: fractions within binomial tolerance, the same seed the same sequence,
//! latency percentiles of the recorded draws (never wall-clock time).

use super::*;

const N: u64 = 10_000;

fn profile(config: SimulationConfig) -> Simulation {
    let whole = crate::Config {
        simulation: config.clone(),
        ..crate::Config::default()
    };
    whole.validate().expect("valid profile");
    Simulation::new(&config, SimulationMetrics::default()).expect("simulates something")
}

fn mixed(seed: u64) -> SimulationConfig {
    SimulationConfig {
        latency_p50_ms: 60,
        latency_p99_ms: 300,
        rate_429: 0.05,
        rate_5xx: 0.02,
        rate_timeout: 0.01,
        rate_reset: 0.005,
        seed,
        ..SimulationConfig::default()
    }
}

/// Five standard deviations of a binomial count.
fn tolerance(n: u64, p: f64) -> f64 {
    5.0 * (n as f64 * p * (1.0 - p)).sqrt()
}

#[test]
fn each_failure_comes_at_its_rate() {
    for seed in [0, 1, 0x5eed] {
        let config = mixed(seed);
        let sim = profile(config.clone());
        let mut counts = [0u64; 5];
        for _ in 0..N {
            let i = match sim.draw().failure {
                Some(Simulated::TooManyRequests) => 0,
                Some(Simulated::ServerError) => 1,
                Some(Simulated::Timeout) => 2,
                Some(Simulated::Reset) => 3,
                None => 4,
            };
            counts[i] += 1;
        }
        let rates = config.rates().map(|(_, r)| r);
        let none = 1.0 - rates.iter().sum::<f64>();
        for (count, p) in counts.iter().zip(rates.iter().chain([&none])) {
            let expected = N as f64 * p;
            let off = (*count as f64 - expected).abs();
            assert!(
                off <= tolerance(N, *p),
                "seed {seed}: {count} where {expected} expected ({counts:?})"
            );
        }
        // The metrics count what was drawn.
        let recorded = sim.metrics.counts();
        assert_eq!(&recorded[1..], &counts[..4]);
        assert_eq!(recorded[0], N, "every draw of a latency profile delays");
        assert_eq!(sim.draws(), N);
    }
}

#[test]
fn the_same_seed_gives_the_same_sequence() {
    let a = profile(mixed(42));
    let b = profile(mixed(42));
    let first: Vec<Draw> = (0..1000).map(|_| a.draw()).collect();
    let second: Vec<Draw> = (0..1000).map(|_| b.draw()).collect();
    assert_eq!(first, second);
    // Draw n depends on n alone, not on what was drawn before.
    assert_eq!(a.draw_at(17), first[17]);
    // Another seed, another sequence.
    let c = profile(mixed(43));
    let other: Vec<Draw> = (0..1000).map(|_| c.draw()).collect();
    assert_ne!(first, other);
    let same_delays = first
        .iter()
        .zip(&other)
        .filter(|(x, y)| x.delay == y.delay)
        .count();
    assert!(same_delays < 10, "{same_delays} equal delays out of 1000");
}

/// The p-quantile of sorted milliseconds.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).min(sorted.len()) - 1]
}

/// Five standard errors of a log-normal's empirical p-quantile, relative: the quantile's
/// error in log space is sigma · sqrt(p (1-p) / n) / φ(z_p).
fn relative_tolerance(sigma: f64, p: f64, z: f64, n: usize) -> f64 {
    let density = (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
    (5.0 * sigma * (p * (1.0 - p) / n as f64).sqrt() / density).exp() - 1.0
}

#[test]
fn delays_fit_the_configured_percentiles() {
    for (p50, p99) in [(60, 300), (18, 48), (100, 262), (5, 5)] {
        let config = SimulationConfig {
            latency_p50_ms: p50,
            latency_p99_ms: p99,
            seed: 7,
            ..SimulationConfig::default()
        };
        let sim = profile(config);
        let mut ms: Vec<f64> = (0..N)
            .map(|_| sim.draw().delay.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let sigma = (p99 as f64 / p50 as f64).ln() / Z_99;
        let n = ms.len();
        let (got50, got99) = (quantile(&ms, 0.50), quantile(&ms, 0.99));
        let tol50 = relative_tolerance(sigma, 0.50, 0.0, n).max(1e-9);
        let tol99 = relative_tolerance(sigma, 0.99, Z_99, n).max(1e-9);
        assert!(
            (got50 / p50 as f64 - 1.0).abs() <= tol50,
            "p50 {got50} for {p50} (±{tol50})"
        );
        assert!(
            (got99 / p99 as f64 - 1.0).abs() <= tol99,
            "p99 {got99} for {p99} (±{tol99})"
        );
    }
}

#[test]
fn delays_are_capped() {
    let sim = profile(SimulationConfig {
        latency_p50_ms: 100,
        latency_p99_ms: 1000,
        latency_max_ms: 1000,
        ..SimulationConfig::default()
    });
    let delays: Vec<Duration> = (0..N).map(|_| sim.draw().delay).collect();
    let max = delays.iter().max().unwrap();
    assert_eq!(
        *max,
        Duration::from_secs(1),
        "some of 1% above p99 are capped"
    );
}

#[test]
fn nothing_configured_is_no_simulation() {
    let config = SimulationConfig::default();
    assert!(!config.enabled());
    assert!(Simulation::new(&config, SimulationMetrics::default()).is_none());
    // Errors without latency: no delay, no latency counted.
    let sim = profile(SimulationConfig {
        rate_reset: 1.0,
        ..SimulationConfig::default()
    });
    let draw = sim.draw();
    assert_eq!(draw.delay, Duration::ZERO);
    assert_eq!(draw.failure, Some(Simulated::Reset));
    assert_eq!(sim.metrics.counts(), [0, 0, 0, 0, 1]);
}

#[tokio::test(start_paused = true)]
async fn an_upstream_exchange_is_bounded_by_the_upstream_timeout() {
    let timeout = Duration::from_millis(500);
    // A delay past the timeout: evalgate's upstream timeout, after exactly the timeout.
    let slow = profile(SimulationConfig {
        latency_p50_ms: 900,
        latency_p99_ms: 900,
        ..SimulationConfig::default()
    });
    let started = tokio::time::Instant::now();
    let Exchange::Instead(Err(UpstreamError::Timeout)) = slow.upstream(timeout).await else {
        panic!("a delay past upstream.timeout_ms is a timeout");
    };
    assert_eq!(started.elapsed(), timeout);
    // A shorter delay: sent with what is left.
    let fast = profile(SimulationConfig {
        latency_p50_ms: 200,
        latency_p99_ms: 200,
        ..SimulationConfig::default()
    });
    let started = tokio::time::Instant::now();
    let Exchange::Send { within } = fast.upstream(timeout).await else {
        panic!("no failure configured");
    };
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert_eq!(within, Some(Duration::from_millis(300)));
    // A simulated timeout hangs until the timeout.
    let hang = profile(SimulationConfig {
        rate_timeout: 1.0,
        ..SimulationConfig::default()
    });
    let started = tokio::time::Instant::now();
    let Exchange::Instead(Err(UpstreamError::Timeout)) = hang.upstream(timeout).await else {
        panic!("rate_timeout = 1");
    };
    assert_eq!(started.elapsed(), timeout);
}

#[tokio::test(start_paused = true)]
async fn a_client_timeout_holds_then_leaves_no_answer() {
    let sim = profile(SimulationConfig {
        rate_timeout: 1.0,
        timeout_hold_ms: 2_000,
        applies_to: AppliesTo::All,
        ..SimulationConfig::default()
    });
    let started = tokio::time::Instant::now();
    let ClientTurn::Instead(response) = sim.client().await else {
        panic!("rate_timeout = 1");
    };
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    assert_eq!(
        response.extensions().get::<Unanswered>(),
        Some(&Unanswered(Simulated::Timeout))
    );
}

#[test]
fn a_simulated_429_says_when_to_retry() {
    let sim = profile(SimulationConfig {
        rate_429: 1.0,
        retry_after_s: 7,
        ..SimulationConfig::default()
    });
    let (status, headers, body) = sim.answer(Some(Simulated::TooManyRequests));
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[header::RETRY_AFTER], "7");
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json["error"].as_str().unwrap().contains("simulated"));
}

//! `[simulation]`: behave like the real service (latency, 429s, 5xx, timeouts, resets),
//! to load-test an app against evalgate as it would run against Amplitude, or to rehearse
//! an upstream outage. Off by default.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::validate::{invalid, range};

/// The longest delay, hold or `Retry-After` the simulation accepts: one hour.
const HOUR_MS: u64 = 3_600_000;

/// Where the simulation applies.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AppliesTo {
    /// Every upstream exchange (cache fills, background refreshes, passthroughs): the
    /// upstream (or the embedded engine) as evalgate sees it.
    #[default]
    Misses,
    /// Every client request on the public listeners, cache hits included: the service as
    /// a client sees it end to end.
    All,
}

impl AppliesTo {
    pub fn as_str(self) -> &'static str {
        match self {
            AppliesTo::Misses => "misses",
            AppliesTo::All => "all",
        }
    }
}

/// `[simulation]`. Fixed at start: a SIGHUP does not change it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimulationConfig {
    /// Median of the simulated latency; with `latency_p99_ms` it fixes a log-normal
    /// distribution. Both 0: no latency.
    pub latency_p50_ms: u64,
    /// 99th percentile of the simulated latency (≥ `latency_p50_ms`).
    pub latency_p99_ms: u64,
    /// Cap on each drawn delay (the log-normal's tail is unbounded).
    pub latency_max_ms: u64,
    /// Fraction of requests answered `429` with `Retry-After` and a JSON body.
    pub rate_429: f64,
    /// Fraction of requests answered `503` with a JSON body.
    pub rate_5xx: f64,
    /// Fraction of requests that get no answer: "misses" hang until `upstream.timeout_ms`
    /// (evalgate's upstream timeout); "all" holds the client for `timeout_hold_ms`, then
    /// drops the connection.
    pub rate_timeout: f64,
    /// Fraction of requests whose connection is dropped: "misses" fail as an upstream
    /// connection error; "all" closes the client's connection (HTTP/1) or resets its
    /// stream (HTTP/2) without an answer.
    pub rate_reset: f64,
    /// `Retry-After` of the simulated 429s, in seconds.
    pub retry_after_s: u64,
    /// With `applies_to = "all"`: how long a simulated timeout holds the client before
    /// its connection is dropped without an answer.
    pub timeout_hold_ms: u64,
    /// `"misses"` or `"all"`.
    pub applies_to: AppliesTo,
    /// The same seed and the same sequence of requests give the same draws.
    pub seed: u64,
}

impl Default for SimulationConfig {
    fn default() -> Self {
        SimulationConfig {
            latency_p50_ms: 0,
            latency_p99_ms: 0,
            latency_max_ms: 60_000,
            rate_429: 0.0,
            rate_5xx: 0.0,
            rate_timeout: 0.0,
            rate_reset: 0.0,
            retry_after_s: 1,
            timeout_hold_ms: 30_000,
            applies_to: AppliesTo::Misses,
            seed: 0,
        }
    }
}

impl SimulationConfig {
    /// Whether anything is simulated (a latency or any nonzero rate).
    pub fn enabled(&self) -> bool {
        self.latency_p99_ms > 0 || self.rates().iter().any(|(_, r)| *r > 0.0)
    }

    /// The error fractions with their keys, in the order draws test them.
    pub fn rates(&self) -> [(&'static str, f64); 4] {
        [
            ("simulation.rate_429", self.rate_429),
            ("simulation.rate_5xx", self.rate_5xx),
            ("simulation.rate_timeout", self.rate_timeout),
            ("simulation.rate_reset", self.rate_reset),
        ]
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let (p50, p99) = (self.latency_p50_ms, self.latency_p99_ms);
        range("simulation.latency_p50_ms", p50, 0, HOUR_MS)?;
        range("simulation.latency_p99_ms", p99, 0, HOUR_MS)?;
        if p99 < p50 {
            return Err(invalid(
                "simulation.latency_p99_ms",
                format!("is {p99}, below simulation.latency_p50_ms ({p50})"),
            ));
        }
        if p50 == 0 && p99 > 0 {
            return Err(invalid(
                "simulation.latency_p50_ms",
                "is 0 but simulation.latency_p99_ms is not: a log-normal latency needs both \
                 (set both to 0 for no latency)"
                    .into(),
            ));
        }
        range("simulation.latency_max_ms", self.latency_max_ms, 1, HOUR_MS)?;
        if self.latency_max_ms < p99 {
            return Err(invalid(
                "simulation.latency_max_ms",
                format!(
                    "is {}, below simulation.latency_p99_ms ({p99}): the cap would cut the \
                     distribution below its own p99",
                    self.latency_max_ms
                ),
            ));
        }
        for (key, rate) in self.rates() {
            if !(0.0..=1.0).contains(&rate) {
                return Err(invalid(key, format!("is {rate}, not a fraction in [0, 1]")));
            }
        }
        let sum: f64 = self.rates().iter().map(|(_, r)| r).sum();
        // A margin for decimal fractions that add up to 1 in the file but not in binary.
        if sum > 1.0 + 1e-9 {
            return Err(invalid(
                "simulation.rate_429",
                format!("rate_429 + rate_5xx + rate_timeout + rate_reset is {sum}, more than 1"),
            ));
        }
        range("simulation.retry_after_s", self.retry_after_s, 0, 3600)?;
        range(
            "simulation.timeout_hold_ms",
            self.timeout_hold_ms,
            1,
            HOUR_MS,
        )
    }
}

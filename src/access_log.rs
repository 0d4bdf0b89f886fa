//! The access log: one structured line per request (or per sampled request) at info
//! level on the target `evalgate::access`, so it can be filtered on its own
//! (`RUST_LOG=warn,evalgate::access=info`).
//!
//! Off by default. When off, the request path pays one relaxed atomic load. Sampling is a
//! counter, not a random draw: with `sample_rate = r` the n-th request is logged when
//! `floor(n·r)` steps up, which logs exactly that fraction, evenly spread, with no RNG and
//! no new dependency.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use http::StatusCode;

use crate::config::AccessLogConfig;
use crate::key::RouteFamily;
use crate::mask::Masked;
use crate::response::CacheStatus;

/// The switch, the sampling rate and the request counter; see the module docs.
#[derive(Default)]
pub struct AccessLog {
    enabled: AtomicBool,
    /// `sample_rate` as `f64` bits.
    rate: AtomicU64,
    seen: AtomicU64,
}

/// One answered request, as logged.
pub struct Entry<'a> {
    pub route: Option<RouteFamily>,
    pub status: StatusCode,
    pub cache: Option<CacheStatus>,
    pub elapsed: Duration,
    pub deployment: Option<&'a str>,
}

impl AccessLog {
    pub fn configure(&self, config: &AccessLogConfig) {
        self.rate
            .store(config.sample_rate.to_bits(), Ordering::Relaxed);
        self.enabled.store(config.enabled, Ordering::Relaxed);
    }

    /// Whether the access log is on: check this first, it is the only cost when off.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Whether this request is one of the sampled ones.
    pub fn sampled(&self) -> bool {
        let rate = f64::from_bits(self.rate.load(Ordering::Relaxed));
        if rate >= 1.0 {
            return true;
        }
        if rate <= 0.0 {
            return false;
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed);
        ((n + 1) as f64 * rate).floor() > (n as f64 * rate).floor()
    }

    /// Logs `entry` if the log is on and the request is sampled.
    pub fn record(&self, entry: &Entry<'_>) {
        if !self.enabled() || !self.sampled() {
            return;
        }
        tracing::info!(
            target: "evalgate::access",
            route = entry.route.map_or("other", RouteFamily::as_str),
            status = entry.status.as_u16(),
            cache = entry.cache.map_or("NONE", CacheStatus::as_str),
            micros = u64::try_from(entry.elapsed.as_micros()).unwrap_or(u64::MAX),
            deployment = entry.deployment.map(|d| tracing::field::display(Masked(d))),
            "request"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(enabled: bool, sample_rate: f64) -> AccessLog {
        let log = AccessLog::default();
        log.configure(&AccessLogConfig {
            enabled,
            sample_rate,
        });
        log
    }

    #[test]
    fn samples_exactly_the_configured_fraction() {
        for (rate, expected) in [(1.0, 1000), (0.0, 0), (0.1, 100), (0.25, 250), (0.5, 500)] {
            let log = log(true, rate);
            let logged = (0..1000).filter(|_| log.sampled()).count();
            assert_eq!(logged, expected, "rate {rate}");
        }
    }

    #[test]
    fn off_by_default() {
        assert!(!AccessLog::default().enabled());
        assert!(!log(false, 1.0).enabled());
    }
}

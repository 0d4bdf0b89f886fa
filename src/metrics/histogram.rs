//! A lock-free latency histogram: fixed buckets of atomic counters, exposed in the
//! Prometheus format and read back as percentiles for `/admin/stats`.
//!
//! `prometheus-client`'s own `Histogram` takes a mutex on every observation; this one is
//! two relaxed `fetch_add`s, so it can sit on the cache-hit path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

/// Upper bounds (seconds) for upstream exchanges: 100 µs to 30 s, five per decade.
pub const UPSTREAM_BOUNDS: &[f64] = &[
    0.0001, 0.0002, 0.0003, 0.0005, 0.0007, 0.001, 0.002, 0.003, 0.005, 0.007, 0.01, 0.02, 0.03,
    0.05, 0.07, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 30.0,
];

/// Upper bounds (seconds) for answers from the cache: 1 µs to 100 ms.
pub const HIT_BOUNDS: &[f64] = &[
    0.000001, 0.000002, 0.000005, 0.00001, 0.00002, 0.00005, 0.0001, 0.0002, 0.0005, 0.001, 0.002,
    0.005, 0.01, 0.1,
];

/// Counts per bucket (not cumulative; the last one is `+Inf`) and the sum in nanoseconds.
/// Clones share the counts (one registered in the registry, one recorded into).
#[derive(Debug, Clone)]
pub struct AtomicHistogram {
    bounds: &'static [f64],
    counts: Arc<[AtomicU64]>,
    sum_ns: Arc<AtomicU64>,
}

/// Latency percentiles in milliseconds; `None` before the first observation.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl AtomicHistogram {
    pub fn new(bounds: &'static [f64]) -> AtomicHistogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "sorted bounds");
        AtomicHistogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let bucket = self.bounds.partition_point(|&le| le < secs);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn snapshot(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// p50/p90/p99, interpolated linearly inside the bucket each falls in (so as exact as
    /// the buckets: within a factor of about 1.5). A rank in the `+Inf` bucket reports the
    /// last finite bound.
    pub fn percentiles(&self) -> Percentiles {
        let counts = self.snapshot();
        let total: u64 = counts.iter().sum();
        let at = |q: f64| -> Option<f64> {
            if total == 0 {
                return None;
            }
            let rank = q * total as f64;
            let mut below = 0u64;
            for (i, &n) in counts.iter().enumerate() {
                if n > 0 && (below + n) as f64 >= rank {
                    let lower = if i == 0 { 0.0 } else { self.bounds[i - 1] };
                    let Some(&upper) = self.bounds.get(i) else {
                        return Some(lower * 1000.0);
                    };
                    let within = ((rank - below as f64) / n as f64).clamp(0.0, 1.0);
                    return Some((lower + (upper - lower) * within) * 1000.0);
                }
                below += n;
            }
            None
        };
        Percentiles {
            count: total,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
        }
    }
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let counts = self.snapshot();
        let count: u64 = counts.iter().sum();
        // Per-bucket counts; the encoder makes them cumulative and the last bound `+Inf`.
        let buckets: Vec<(f64, u64)> = self
            .bounds
            .iter()
            .copied()
            .chain(std::iter::once(f64::INFINITY))
            .zip(counts)
            .collect();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_fall_in_the_right_bucket() {
        let h = AtomicHistogram::new(UPSTREAM_BOUNDS);
        assert_eq!(h.percentiles().p50_ms, None);
        for _ in 0..90 {
            h.observe(Duration::from_micros(1_500)); // (1 ms, 2 ms]
        }
        for _ in 0..10 {
            h.observe(Duration::from_millis(400)); // (300 ms, 500 ms]
        }
        let p = h.percentiles();
        assert_eq!(p.count, 100);
        let p50 = p.p50_ms.unwrap();
        assert!((1.0..=2.0).contains(&p50), "{p50}");
        let p99 = p.p99_ms.unwrap();
        assert!((300.0..=500.0).contains(&p99), "{p99}");
    }

    #[test]
    fn beyond_the_last_bound_reports_it() {
        let h = AtomicHistogram::new(HIT_BOUNDS);
        h.observe(Duration::from_secs(3));
        assert_eq!(h.percentiles().p99_ms, Some(100.0));
    }
}

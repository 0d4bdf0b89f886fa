//! The shared cache tier's metrics (`evalgate_shared_cache_*`): every Redis operation by
//! result, their latency, whether the tier is in use, purge announcements and pending
//! writes. Recorded on the miss path and by the tier's own tasks, never on an L1 hit.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::histogram::{AtomicHistogram, Percentiles, UPSTREAM_BOUNDS};
use super::labels::Labels;

/// Each operation and the results it can have; every pair is a series created at start.
pub const OPS: [(&str, &[&str]); 7] = [
    // An L1 miss asking Redis: found fresh, found stale, not there (lock taken: this
    // instance fetches), locked (another instance is fetching), or no answer.
    (
        "read",
        &[
            "hit", "stale", "miss", "locked", "error", "timeout", "skipped",
        ],
    ),
    // Waiting for another instance's fill: it arrived, the lock expired and this instance
    // took over, the holder's fetch failed (nothing storable: every waiter fetches), or the
    // wait ended at upstream.timeout_ms (this instance fetches).
    ("wait", &["waited", "took_over", "released", "gave_up"]),
    ("write", &["ok", "error", "timeout", "skipped"]),
    ("release", &["ok", "error", "timeout", "skipped"]),
    ("purge", &["ok", "error", "timeout", "skipped"]),
    // Re-reading the generations: no change, a purge found that was missed, failed.
    ("resync", &["ok", "changed", "error"]),
    // The per-deployment flag-poll lease: won (this instance polls), lost, failed.
    ("lease", &["won", "lost", "error"]),
];

/// Operations whose latency is recorded.
const TIMED: [&str; 4] = ["read", "write", "purge", "resync"];

/// Handles on the tier's metrics; cheap to clone.
#[derive(Clone, Default)]
pub struct SharedCacheMetrics {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `[op][result]` in [`OPS`] order.
    ops: Vec<Vec<Counter>>,
    latency: Vec<AtomicHistogram>,
    up: Gauge,
    fanout: [Counter; 2],
    pending_writes: Gauge,
}

impl SharedCacheMetrics {
    pub(super) fn register(r: &mut Registry) -> SharedCacheMetrics {
        let family = Family::<Labels, Counter>::default();
        r.register(
            "shared_cache_ops",
            "Shared cache tier (Redis) operations by result",
            family.clone(),
        );
        let ops = OPS
            .iter()
            .map(|(op, results)| {
                results
                    .iter()
                    .map(|result| {
                        family.get_or_create_owned(&vec![("op", *op), ("result", *result)])
                    })
                    .collect()
            })
            .collect();
        let latency = TIMED
            .iter()
            .map(|op| {
                let h = AtomicHistogram::new(UPSTREAM_BOUNDS);
                r.register(
                    format!("shared_cache_{op}_duration_seconds"),
                    format!("Latency of shared cache {op} calls to Redis"),
                    h.clone(),
                );
                h
            })
            .collect();
        let up = Gauge::default();
        r.register(
            "shared_cache_up",
            "1 while the shared cache tier is in use; 0 while it is off (circuit breaker \
             open, or not connected yet)",
            up.clone(),
        );
        let fanout_family = Family::<Labels, Counter>::default();
        r.register(
            "shared_cache_purge_messages",
            "Purge announcements on the fleet's channel, sent and received",
            fanout_family.clone(),
        );
        let fanout = ["sent", "received"]
            .map(|d| fanout_family.get_or_create_owned(&vec![("direction", d)]));
        let pending_writes = Gauge::default();
        r.register(
            "shared_cache_pending_writes",
            "Writes to Redis queued or running (bounded by shared_cache.max_pending_writes)",
            pending_writes.clone(),
        );
        SharedCacheMetrics {
            inner: Arc::new(Inner {
                ops,
                latency,
                up,
                fanout,
                pending_writes,
            }),
        }
    }

    /// One operation ended with `result` (one of its [`OPS`] results).
    pub fn op(&self, op: &str, result: &str) {
        if let Some(counter) = self.counter(op, result) {
            counter.inc();
        }
    }

    fn counter(&self, op: &str, result: &str) -> Option<&Counter> {
        let at = OPS.iter().position(|(o, _)| *o == op)?;
        let r = OPS[at].1.iter().position(|x| *x == result)?;
        self.inner.ops.get(at)?.get(r)
    }

    /// How many `op` calls ended with `result` so far.
    pub fn count(&self, op: &str, result: &str) -> u64 {
        self.counter(op, result).map_or(0, Counter::get)
    }

    pub fn latency(&self, op: &str, elapsed: Duration) {
        if let Some(at) = TIMED.iter().position(|o| *o == op)
            && let Some(h) = self.inner.latency.get(at)
        {
            h.observe(elapsed);
        }
    }

    /// Latency percentiles of `op` calls.
    pub fn percentiles(&self, op: &str) -> Option<Percentiles> {
        let at = TIMED.iter().position(|o| *o == op)?;
        Some(self.inner.latency.get(at)?.percentiles())
    }

    pub fn set_up(&self, up: bool) {
        self.inner.up.set(i64::from(up));
    }

    pub fn purge_sent(&self) {
        self.inner.fanout[0].inc();
    }

    pub fn purge_received(&self) {
        self.inner.fanout[1].inc();
    }

    /// Announcements sent and received so far.
    pub fn fanout(&self) -> [u64; 2] {
        self.inner.fanout.each_ref().map(Counter::get)
    }

    pub fn pending_writes(&self, delta: i64) {
        self.inner.pending_writes.inc_by(delta);
    }
}

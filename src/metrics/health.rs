//! When the upstream last answered and last failed, for `/readyz`: two atomics, written
//! on the miss path only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// The times of the last answered and the last failed upstream exchange.
pub(super) struct LastExchanges {
    /// Milliseconds after `epoch` (at least 1); 0 = never.
    answer_ms: AtomicU64,
    failure_ms: AtomicU64,
    epoch: Instant,
}

impl LastExchanges {
    pub(super) fn new() -> LastExchanges {
        LastExchanges {
            answer_ms: AtomicU64::new(0),
            failure_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// An exchange ended: `answered` when it got an HTTP answer (any status).
    pub(super) fn record(&self, answered: bool) {
        let now = self.epoch.elapsed().as_millis().max(1) as u64;
        let slot = if answered {
            &self.answer_ms
        } else {
            &self.failure_ms
        };
        slot.store(now, Ordering::Relaxed);
    }

    pub(super) fn health(&self, window: Duration) -> UpstreamHealth {
        let now = self.epoch.elapsed().as_millis() as u64;
        let window = window.as_millis() as u64;
        let recent = |ms: u64| ms != 0 && now.saturating_sub(ms) <= window;
        if recent(self.answer_ms.load(Ordering::Relaxed)) {
            UpstreamHealth::Answered
        } else if recent(self.failure_ms.load(Ordering::Relaxed)) {
            UpstreamHealth::Failing
        } else {
            UpstreamHealth::Unknown
        }
    }

    pub(super) fn since_start(&self) -> Duration {
        self.epoch.elapsed()
    }
}

/// The upstream's state for readiness, from the exchanges within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamHealth {
    /// Some exchange got an HTTP answer (any status).
    Answered,
    /// Exchanges were attempted and none got an HTTP answer.
    Failing,
    /// Nothing was asked.
    Unknown,
}

impl UpstreamHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamHealth::Answered => "answered",
            UpstreamHealth::Failing => "failing",
            UpstreamHealth::Unknown => "unknown",
        }
    }
}

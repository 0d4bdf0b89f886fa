//! The circuit breaker: after `shared_cache.breaker_failures` consecutive failed or
//! timed-out calls the tier is off, and every request behaves as on a single box (L1 and
//! local coalescing) without waiting on Redis. The tier's maintenance task probes Redis
//! after `shared_cache.breaker_open_ms` (doubling per failed probe, up to
//! `shared_cache.breaker_max_open_ms`) and closes the breaker once a probe, the replay of
//! pending purges, the release of fill locks left behind and a resync of the generations
//! succeed. Requests only read one atomic.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use tokio::sync::Notify;

pub struct Breaker {
    open: AtomicBool,
    failures: AtomicU32,
    threshold: u32,
    /// Woken when the breaker opens (the maintenance task starts probing).
    opened: Notify,
}

impl Breaker {
    /// Starts open: the tier is used once the first connection and resync succeed.
    pub fn new(threshold: u32) -> Breaker {
        Breaker {
            open: AtomicBool::new(true),
            failures: AtomicU32::new(0),
            threshold,
            opened: Notify::new(),
        }
    }

    /// Whether calls may be made.
    pub fn closed(&self) -> bool {
        !self.open.load(Ordering::Acquire)
    }

    pub fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
    }

    /// A failed or timed-out call; returns whether this one opened the breaker.
    pub fn failure(&self) -> bool {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if n >= self.threshold && !self.open.swap(true, Ordering::AcqRel) {
            self.opened.notify_one();
            return true;
        }
        false
    }

    /// Closes it: a probe and a resync succeeded.
    pub fn close(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.open.store(false, Ordering::Release);
    }

    /// Resolves when the breaker opens (or has opened since the last call).
    pub async fn wait_opened(&self) {
        self.opened.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = Breaker::new(3);
        assert!(!b.closed(), "starts open until the first resync");
        b.close();
        assert!(!b.failure());
        assert!(!b.failure());
        b.success();
        assert!(!b.failure());
        assert!(!b.failure());
        assert!(b.closed());
        assert!(b.failure(), "the third in a row opens it");
        assert!(!b.closed());
        assert!(!b.failure(), "already open");
        b.close();
        assert!(b.closed());
    }
}

//! The sweep: every `cache.sweep_interval_s`, one pass over the entries removes those past
//! their lifetime or hidden by a purge of their deployment. Reads never serve such an
//! entry ([`ResponseCache::get`]); the sweep gives their memory back, and keeps the
//! entry count and `evalgate_cache_evictions_total{cause="expired"}` current, when no read
//! comes for them.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::ResponseCache;

impl ResponseCache {
    /// One pass over every entry, removing those no longer served; returns how many it
    /// removed. Runs on a blocking thread (a pass costs ~1.5 µs per entry: 1.5 s over a
    /// million, docs/memory.md), so requests go on meanwhile.
    pub async fn sweep(&self) -> u64 {
        self.sweep_unless(None).await
    }

    /// [`ResponseCache::sweep`], cut short when `stop` turns true.
    async fn sweep_unless(&self, stop: Option<watch::Receiver<bool>>) -> u64 {
        let cache = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let pass = tokio::task::spawn_blocking(move || {
            let now = Instant::now();
            let mut removed = 0;
            let entries = cache.answers.iter().chain(cache.flags.iter());
            for (seen, (key, entry)) in entries.enumerate() {
                if seen % STOP_CHECK_EVERY == 0 && stop.as_ref().is_some_and(|s| *s.borrow()) {
                    break;
                }
                if !cache.servable(&key, &entry, now)
                    && runtime.block_on(cache.drop_entry(&key, &entry))
                {
                    removed += 1;
                }
            }
            removed
        });
        pass.await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "cache sweep failed");
            0
        })
    }
}

/// Entries a sweep passes between two looks at the stop signal.
const STOP_CHECK_EVERY: usize = 4096;

/// Sweeps `cache` every `every` until `stop` turns true (a pass in progress ends early).
pub async fn run_sweeper(cache: ResponseCache, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
                continue;
            }
        }
        let started = Instant::now();
        let removed = cache.sweep_unless(Some(stop.clone())).await;
        tracing::debug!(
            removed,
            took_ms = started.elapsed().as_millis() as u64,
            "cache swept"
        );
    }
}

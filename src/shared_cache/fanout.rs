//! Purges across the fleet, and the tier's maintenance task.
//!
//! A purge raises a generation in one Redis hash (O(1): old entries become unreachable
//! because every name folds its generations in), and is announced on a channel so every
//! instance drops its L1 entries at once. Announcements are fire-and-forget, so each
//! instance also re-reads the hash every `shared_cache.resync_interval_ms`, and after its
//! subscription reconnects: a missed announcement costs at most one interval. The hash
//! carries an epoch; a Redis that lost it (restarted empty, flushed) gets a new epoch, so
//! no entry from before can be reached again, and every instance drops its L1.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use redis::Value;
use tokio::sync::Notify;

use super::names::{DepTag, Gens, Namer};
use super::scripts::{PURGE, SYNC};
use super::{SharedCache, envelope, random_u64};

/// The generations this instance knows: raised by its own purges, announcements and
/// resyncs; never lowered within an epoch.
#[derive(Default)]
pub struct Generations {
    epoch: AtomicU64,
    all: AtomicU64,
    deployments: RwLock<HashMap<DepTag, u64>>,
}

impl Generations {
    pub fn of(&self, tag: DepTag) -> Gens {
        Gens {
            epoch: self.epoch.load(Ordering::Acquire),
            all: self.all.load(Ordering::Acquire),
            deployment: self
                .deployments
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(&tag)
                .copied()
                .unwrap_or(0),
        }
    }

    /// The purge-all generation.
    pub fn of_all(&self) -> u64 {
        self.all.load(Ordering::Acquire)
    }

    /// Raises one generation to `generation`; whether it rose.
    fn raise(&self, tag: Option<DepTag>, generation: u64) -> bool {
        match tag {
            None => self.all.fetch_max(generation, Ordering::AcqRel) < generation,
            Some(tag) => {
                let mut map = self.deployments.write().unwrap_or_else(|e| e.into_inner());
                let current = map.entry(tag).or_insert(0);
                let rose = *current < generation;
                *current = (*current).max(generation);
                rose
            }
        }
    }
}

/// A purge announced by another instance (or found by a resync), for the gateway to apply
/// to its L1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemotePurge {
    All,
    Deployment(String),
}

/// A purge begun here ([`SharedCache::begin_purge`]), to finish in Redis.
#[derive(Debug, Clone, Copy)]
pub struct Purge {
    tag: Option<DepTag>,
    now: u64,
}

/// What became of a purge beyond this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fanout {
    /// Raised in Redis and announced to the fleet.
    Sent,
    /// Redis could not be reached: applied here (this instance reads under the raised
    /// generation already), and replayed to the fleet by the maintenance task as soon as
    /// Redis takes it.
    Pending,
}

/// Purges remembered for replay while the tier is off; past it they fold into one
/// purge of everything.
const PENDING_PURGES: usize = 64;

/// How far behind this instance's clock another's may be, for the first resync's rule.
const CLOCK_MARGIN_MS: u64 = 60_000;

/// Parses a `HGETALL` / script array reply of strings.
pub(super) fn strings(value: Value) -> Vec<String> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
                Value::SimpleString(s) => s,
                Value::Int(n) => n.to_string(),
                _ => String::new(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn now_ms() -> u64 {
    envelope::unix_ms(SystemTime::now())
}

impl SharedCache {
    /// The first half of a purge of `deployment` (or everything), before this instance
    /// drops its L1 entries: raises the generation here at once (to the current time, as
    /// Redis will), so that no miss from now on reads an entry from before the purge.
    pub fn begin_purge(&self, deployment: Option<&str>) -> Purge {
        let tag = deployment.map(|d| self.note(d));
        // Past the generation known here, even when another instance's clock put it ahead
        // of this one's (or a purge came in this same millisecond): the raise must change
        // the names this instance reads under.
        let known = match tag {
            Some(tag) => self.inner.gens.of(tag).deployment,
            None => self.inner.gens.of_all(),
        };
        let now = now_ms().max(known + 1);
        self.inner.gens.raise(tag, now);
        Purge { tag, now }
    }

    /// The second half: raises the generation in Redis and announces it to the fleet. When
    /// Redis cannot be reached the purge is kept and replayed when it can.
    pub async fn finish_purge(&self, purge: Purge) -> Fanout {
        match self.raise_in_redis(purge.tag, purge.now).await {
            Ok(()) => Fanout::Sent,
            Err(e) => {
                tracing::warn!(error = %e, "shared cache: purge not announced; replayed when Redis answers");
                self.keep_pending(&[purge.tag]);
                // Replay at once rather than at the next resync tick.
                self.inner.resync_now.notify_one();
                Fanout::Pending
            }
        }
    }

    /// Remembers purges to replay (bounded: past it, one purge of everything).
    fn keep_pending(&self, tags: &[Option<DepTag>]) {
        let mut pending = self
            .inner
            .pending_purges
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for tag in tags {
            if pending.contains(&None) || pending.contains(tag) {
                continue;
            }
            if pending.len() >= PENDING_PURGES {
                pending.clear();
                pending.push(None);
            } else {
                pending.push(*tag);
            }
        }
    }

    /// Replays the purges Redis missed, in order; those it still cannot take stay pending.
    pub(super) async fn replay_pending(&self) -> Result<(), super::CallError> {
        let pending = std::mem::take(
            &mut *self
                .inner
                .pending_purges
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for (i, tag) in pending.iter().enumerate() {
            if let Err(e) = self.raise_in_redis(*tag, now_ms()).await {
                self.keep_pending(&pending[i..]);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The PURGE script and the announcement.
    async fn raise_in_redis(&self, tag: Option<DepTag>, now: u64) -> Result<(), super::CallError> {
        let field = Namer::gen_field(tag);
        let hash = self.inner.namer.generations();
        let epoch_candidate = random_u64().to_string();
        let metrics = self.metrics();
        let result = self
            .inner
            .calls
            .call_anyway("purge", |mut conn| async move {
                let reply: Value = PURGE
                    .key(&hash)
                    .arg(&field)
                    .arg(now)
                    .arg(&epoch_candidate)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(strings(reply))
            })
            .await;
        let reply = match result {
            Ok(reply) => reply,
            Err(e) => {
                metrics.op("purge", e.result());
                return Err(e);
            }
        };
        metrics.op("purge", "ok");
        self.announce(tag, &reply).await;
        Ok(())
    }

    /// Applies a raised generation here and publishes it: `reply` is `[epoch, generation]`.
    pub(super) async fn announce(&self, tag: Option<DepTag>, reply: &[String]) {
        let (Some(epoch), Some(generation)) = (
            reply.first().and_then(|e| e.parse::<u64>().ok()),
            reply.get(1).and_then(|g| g.parse::<u64>().ok()),
        ) else {
            return;
        };
        if epoch == self.inner.gens.epoch.load(Ordering::Acquire) {
            self.inner.gens.raise(tag, generation);
        } else {
            // Redis has a new epoch (it lost the generations): learn it now.
            self.inner.resync_now.notify_one();
        }
        let field = Namer::gen_field(tag);
        let channel = self.inner.namer.channel();
        let message = format!("{epoch} {field} {generation}");
        let sent = self
            .inner
            .calls
            .call_anyway("purge", |mut conn| async move {
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(&message)
                    .query_async::<i64>(&mut conn)
                    .await
            })
            .await;
        if sent.is_ok() {
            self.metrics().purge_sent();
        }
    }

    /// Re-reads the generations hash; purges locally (through `on_purge`) whatever rose
    /// since, and everything when the epoch changed. `Err` when Redis could not be read.
    pub(super) async fn resync(
        &self,
        on_purge: &(dyn Fn(RemotePurge) + Send + Sync),
    ) -> Result<(), super::CallError> {
        let hash = self.inner.namer.generations();
        let candidate = random_u64().to_string();
        let metrics = self.metrics();
        let reply = self
            .inner
            .calls
            .call_anyway("resync", |mut conn| async move {
                let value: Value = SYNC
                    .key(&hash)
                    .arg(&candidate)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(strings(value))
            })
            .await
            .inspect_err(|e| metrics.op("resync", e.result()))?;
        let fields: HashMap<&str, &str> = reply
            .chunks_exact(2)
            .map(|pair| (pair[0].as_str(), pair[1].as_str()))
            .collect();
        let gens = &self.inner.gens;
        let Some(epoch) = fields.get("epoch").and_then(|e| e.parse::<u64>().ok()) else {
            metrics.op("resync", "error");
            return Err(super::CallError::Failed(
                "no epoch in the generations hash".into(),
            ));
        };
        let mut changed = false;
        let mut dropped_all = false;
        let previous = gens.epoch.swap(epoch, Ordering::AcqRel);
        if previous != epoch {
            // A new key space: the generations start again from what the hash holds.
            gens.all.store(0, Ordering::Release);
            gens.deployments
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            if previous != 0 {
                tracing::warn!(
                    "shared cache: Redis lost the generations (restarted empty or flushed); dropping this instance's L1"
                );
                on_purge(RemotePurge::All);
                changed = true;
                dropped_all = true;
            }
        }
        for (field, value) in &fields {
            let Some(generation) = value.parse::<u64>().ok() else {
                continue;
            };
            let tag = match field.strip_prefix("g:") {
                Some("*") => None,
                Some(hex) => match DepTag::parse(hex) {
                    Some(tag) => Some(tag),
                    None => continue,
                },
                None => continue,
            };
            // Raised since the last resync; or, at the first one, since this process
            // started (purges made elsewhere while this instance served without Redis),
            // with a minute's margin for the purging instance's clock being behind.
            let since_start = self.inner.started_ms.saturating_sub(CLOCK_MARGIN_MS);
            let missed = previous == epoch || generation >= since_start;
            if gens.raise(tag, generation) && missed && !dropped_all {
                changed = true;
                self.purge_locally(tag, on_purge);
            }
        }
        metrics.op("resync", if changed { "changed" } else { "ok" });
        Ok(())
    }

    /// Drops this instance's L1 entries for `tag` (everything for `None`).
    pub(super) fn purge_locally(
        &self,
        tag: Option<DepTag>,
        on_purge: &(dyn Fn(RemotePurge) + Send + Sync),
    ) {
        match tag {
            None => on_purge(RemotePurge::All),
            Some(tag) => match self.deployment_of(tag) {
                Ok(Some(deployment)) => on_purge(RemotePurge::Deployment(deployment)),
                // Never served here: nothing to drop.
                Ok(None) => {}
                // Forgotten (more deployments than remembered): drop everything.
                Err(()) => on_purge(RemotePurge::All),
            },
        }
    }

    /// One announcement: `<epoch> <field> <generation>`.
    pub(super) fn on_message(
        &self,
        text: &str,
        on_purge: &(dyn Fn(RemotePurge) + Send + Sync),
        resync: &Notify,
    ) {
        self.metrics().purge_received();
        let mut parts = text.split(' ');
        let (Some(epoch), Some(field), Some(generation)) = (
            parts.next().and_then(|e| e.parse::<u64>().ok()),
            parts.next(),
            parts.next().and_then(|g| g.parse::<u64>().ok()),
        ) else {
            return;
        };
        if epoch != self.inner.gens.epoch.load(Ordering::Acquire) {
            resync.notify_one();
            return;
        }
        let tag = match field.strip_prefix("g:") {
            Some("*") => None,
            Some(hex) => match DepTag::parse(hex) {
                Some(tag) => Some(tag),
                None => return,
            },
            None => return,
        };
        if self.inner.gens.raise(tag, generation) {
            tracing::debug!("shared cache: purge announced by another instance");
            self.purge_locally(tag, on_purge);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::metrics::SharedCacheMetrics;
    use crate::shared_cache::Origin;

    fn tier() -> SharedCache {
        let mut config = Config::default();
        config.shared_cache.url = "redis://127.0.0.1:1".into();
        let origin = Origin::Url("http://upstream".into());
        SharedCache::new(&config, origin, SharedCacheMetrics::default())
            .unwrap()
            .expect("configured")
    }

    /// A generation another instance's clock put ahead of this one's: the purge must still
    /// change the names this instance reads under.
    #[tokio::test]
    async fn a_purge_raises_past_a_generation_ahead_of_this_clock() {
        let tier = tier();
        let tag = tier.note("dep");
        let ahead = now_ms() + 10_000;
        tier.inner.gens.raise(Some(tag), ahead);
        tier.begin_purge(Some("dep"));
        assert!(tier.inner.gens.of(tag).deployment > ahead);
        tier.inner.gens.raise(None, ahead);
        tier.begin_purge(None);
        assert!(tier.inner.gens.of_all() > ahead);
    }
}

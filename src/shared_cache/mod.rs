//! The shared cache tier: Redis (or Valkey, or a Redis Cluster) as a second tier behind
//! each instance's moka cache, shared by a fleet of gateways.
//!
//! The L1 hit path never reaches this module. An L1 miss, in its one local flight, asks
//! Redis once ([`SharedCache::read`]): a value found there is served and kept in L1; else
//! the flight holds a fill lock and fetches, or waits for the instance that holds it
//! ([`SharedCache::wait`]). The answer goes to Redis in a bounded, tracked task after the
//! client has it ([`SharedCache::write`]). Purges bump a generation folded into every
//! name ([`names`]), announced on a channel and re-read periodically ([`fanout`]).
//! Every call is bounded and counted ([`conn`]); a [`breaker`] turns the tier off when
//! Redis fails, and the instance then runs as a single box.
//!
//! - [`names`]: keyed hashes for every key and channel name.
//! - [`envelope`]: the stored value.
//! - [`scripts`]: the Lua scripts, one round trip each.
//! - [`conn`]: connection, timeouts, in-flight bound.
//! - [`breaker`]: the circuit breaker.
//! - [`entries`]: read, lock, wait, write, release (and release fill locks left behind).
//! - [`fanout`]: generations, purges and their announcements, resync.
//! - [`lease`]: one flag poll per deployment per interval for the fleet.
//! - [`maintenance`]: the background task: connect, subscribe, resync, recover.
//! - [`orphans`]: fill locks left behind by calls that timed out, released later.

mod breaker;
mod conn;
mod entries;
mod envelope;
pub mod fanout;
mod lease;
mod maintenance;
pub mod names;
mod orphans;
mod scripts;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

pub use conn::CallError;
pub use entries::{Read, Slot, Token, Waited};
pub use fanout::{Fanout, Purge, RemotePurge};
use orphans::Orphan;

use crate::config::{Config, SharedCacheConfig};
use crate::key::CacheKey;
use crate::metrics::SharedCacheMetrics;
use conn::{Calls, Target};
use fanout::Generations;
use names::{DepTag, Namer};

/// The tier's handle; clones share it.
#[derive(Clone)]
pub struct SharedCache {
    inner: Arc<Shared>,
}

struct Shared {
    config: SharedCacheConfig,
    /// What answers misses; folded into every entry's name.
    origin: Origin,
    /// When this process started (Unix ms): a generation raised since then, found by the
    /// first resync, is a purge this instance may have missed.
    started_ms: u64,
    /// Asks the maintenance task for a resync now.
    resync_now: Arc<tokio::sync::Notify>,
    /// How long a fill lock lives.
    lock_ttl: Duration,
    /// The longest an instance waits for another's fill (`upstream.timeout_ms`).
    max_wait: Duration,
    namer: Namer,
    target: Target,
    calls: Calls,
    gens: Generations,
    known: Mutex<Known>,
    /// Writes queued or running (`shared_cache.max_pending_writes`).
    writes: Arc<Semaphore>,
    tracker: TaskTracker,
    /// This instance's id, in lock tokens and for logs; random per start.
    instance: u64,
    next_token: AtomicU64,
    /// Purges made while the tier was off, replayed when it comes back.
    pending_purges: Mutex<Vec<Option<DepTag>>>,
    /// Fill locks this instance may have left in Redis (a lock call that got no answer,
    /// a write that did not run): released by the maintenance task, so that no peer
    /// waits for a fill that will not come.
    orphans: Mutex<Vec<Orphan>>,
    /// Whether the tier is in use, for whoever waits for a change ([`SharedCache::until`]).
    up: tokio::sync::watch::Sender<bool>,
}

/// Deployment keys this instance has served, by tag, so that an announced purge (which
/// names a tag) finds the entries to drop; bounded.
#[derive(Default)]
struct Known {
    by_tag: HashMap<DepTag, String>,
    order: VecDeque<DepTag>,
    /// Some were forgotten: a purge of an unknown tag then drops everything.
    overflowed: bool,
}

/// Deployments remembered by tag at most (about 100 bytes each).
const KNOWN_DEPLOYMENTS: usize = 65_536;

/// What answers this instance's misses. Instances share an entry only when they have the
/// same origin: the same upstream base URL, or embedded engines serving the entry's
/// deployment the same flags (a fleet part-way through a flags rollout never mixes old
/// and new answers; one deployment's new file leaves the others' entries shared).
#[derive(Clone)]
pub enum Origin {
    Url(String),
    Embedded(crate::embedded::Embedded),
}

impl Origin {
    /// The origin of `deployment`'s answers: the URL, or the digest of the flags that
    /// deployment sees (a key the engine does not know, which it answers 401, has an
    /// origin of its own, so it never shares an entry with an instance that knows it).
    fn bytes(&self, deployment: &str) -> Vec<u8> {
        match self {
            Origin::Url(url) => url.as_bytes().to_vec(),
            Origin::Embedded(engine) => match engine.digest_for(deployment) {
                Some(digest) => {
                    let mut out = b"embedded:".to_vec();
                    out.extend_from_slice(&digest.to_be_bytes());
                    out
                }
                None => b"embedded:unknown-key".to_vec(),
            },
        }
    }
}

/// The tier's state, for `/healthz`, `/admin/stats` and the status page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// `up` (in use) or `down` (off: not connected yet, or the breaker is open).
    pub state: &'static str,
    pub target: String,
    pub namespace: String,
    pub pending_writes: usize,
}

impl SharedCache {
    /// The tier for `config`, or `None` when `[shared_cache]` is off. Connects later
    /// ([`SharedCache::run`]): a Redis that is down does not stop the start.
    pub fn new(
        config: &Config,
        origin: Origin,
        metrics: SharedCacheMetrics,
    ) -> Result<Option<SharedCache>, String> {
        let sc = &config.shared_cache;
        if !sc.enabled() {
            return Ok(None);
        }
        let target = Target::new(sc)?;
        let lock_ttl = match sc.lock_ttl_ms {
            0 => config.upstream.timeout(),
            ms => Duration::from_millis(ms),
        };
        metrics.set_up(false);
        Ok(Some(SharedCache {
            inner: Arc::new(Shared {
                origin,
                started_ms: envelope::unix_ms(std::time::SystemTime::now()),
                resync_now: Arc::new(tokio::sync::Notify::new()),
                lock_ttl,
                max_wait: config.upstream.timeout(),
                namer: Namer::new(&sc.namespace, &sc.key_secret),
                target,
                calls: Calls::new(sc, metrics),
                gens: Generations::default(),
                known: Mutex::default(),
                writes: Arc::new(Semaphore::new(sc.max_pending_writes)),
                tracker: TaskTracker::new(),
                instance: random_u64(),
                next_token: AtomicU64::new(0),
                pending_purges: Mutex::default(),
                orphans: Mutex::default(),
                up: tokio::sync::watch::Sender::new(false),
                config: sc.clone(),
            }),
        }))
    }

    /// Whether Redis is in use now (the breaker is closed).
    pub fn usable(&self) -> bool {
        self.inner.calls.breaker.closed()
    }

    /// Resolves once the tier's state (in use or off, as the maintenance task last set
    /// it) is `up`: for tests and tools that must not race the first connection.
    pub async fn until(&self, up: bool) {
        let mut rx = self.inner.up.subscribe();
        let _ = rx.wait_for(|now| *now == up).await;
    }

    /// Records whether the tier is in use (metrics and [`SharedCache::until`]).
    fn set_up(&self, up: bool) {
        self.metrics().set_up(up);
        self.inner.up.send_replace(up);
    }

    /// Where `key`'s entry is in Redis under the current generations, or `None` while the
    /// tier is off (a read skipped by the breaker, counted).
    pub fn slot(&self, key: &CacheKey) -> Option<Slot> {
        if !self.usable() {
            self.metrics().op("read", "skipped");
            return None;
        }
        let tag = self.inner.namer.dep_tag(key.deployment());
        let gens = self.inner.gens.of(tag);
        let origin = self.inner.origin.bytes(key.deployment());
        Some(Slot {
            names: self.inner.namer.entry(key, tag, gens, &origin),
        })
    }

    /// Remembers `deployment` by its tag, so that an announced purge finds its entries:
    /// called for every entry stored in L1 (200s and 401s); returns the tag.
    pub fn note(&self, deployment: &str) -> DepTag {
        let tag = self.inner.namer.dep_tag(deployment);
        let mut known = self.inner.known.lock().unwrap_or_else(|e| e.into_inner());
        if !known.by_tag.contains_key(&tag) {
            if known.order.len() >= KNOWN_DEPLOYMENTS {
                if let Some(old) = known.order.pop_front() {
                    known.by_tag.remove(&old);
                }
                known.overflowed = true;
            }
            known.by_tag.insert(tag, deployment.to_string());
            known.order.push_back(tag);
        }
        tag
    }

    /// The deployment key behind `tag`, if this instance served it.
    fn deployment_of(&self, tag: DepTag) -> Result<Option<String>, ()> {
        let known = self.inner.known.lock().unwrap_or_else(|e| e.into_inner());
        match known.by_tag.get(&tag) {
            Some(d) => Ok(Some(d.clone())),
            None if known.overflowed => Err(()),
            None => Ok(None),
        }
    }

    /// The tier's metrics.
    pub fn metrics(&self) -> &SharedCacheMetrics {
        &self.inner.calls.metrics
    }

    pub fn status(&self) -> Status {
        Status {
            state: if self.usable() { "up" } else { "down" },
            target: self.inner.config.display_target(),
            namespace: self.inner.config.namespace.clone(),
            pending_writes: self.inner.config.max_pending_writes
                - self.inner.writes.available_permits(),
        }
    }

    /// Waits for pending writes to finish (at shutdown), at most `within`.
    pub async fn drain(&self, within: Duration) {
        self.inner.tracker.close();
        let _ = tokio::time::timeout(within, self.inner.tracker.wait()).await;
    }

    /// One attempt to reach Redis within `shared_cache.connect_timeout_ms` (for
    /// `--check --connect` and the start-up line): `Err` says why not, in one line.
    pub async fn check_connection(&self) -> Result<(), String> {
        let conn = self.inner.target.connect(&self.inner.config).await?;
        let mut conn = conn;
        let ping_cmd = redis::cmd("PING");
        let ping = ping_cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(self.inner.config.connect_timeout(), ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer to PING within {} ms",
                self.inner.config.connect_timeout_ms
            )),
        }
    }
}

/// A random number from the OS (ring's generator; no new dependency).
fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the OS random number generator works");
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod origin_tests {
    use super::Origin;
    use crate::embedded::Embedded;

    /// Two instances that serve deployment A the same file share A's entries even when
    /// their B files differ (a rollout of B's flags); B's entries, and a key one of them
    /// does not know, are never shared.
    #[test]
    fn embedded_origins_are_per_deployment() {
        let dir = std::env::temp_dir().join(format!("evalgate-origin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, flags: &str| {
            let path = dir.join(name);
            std::fs::write(&path, flags).unwrap();
            path
        };
        let a = file("a.json", r#"[{"key":"a","segments":[],"variants":{}}]"#);
        let b1 = file("b1.json", r#"[{"key":"b","segments":[],"variants":{}}]"#);
        let b2 = file("b2.json", r#"[{"key":"b2","segments":[],"variants":{}}]"#);
        let engine = |b: &std::path::Path, b_keys: &[&str]| {
            let b_keys = b_keys.iter().map(|k| k.to_string()).collect();
            Origin::Embedded(
                Embedded::load_files(&[(a.clone(), vec!["A".into()]), (b.to_path_buf(), b_keys)])
                    .unwrap(),
            )
        };
        let old = engine(&b1, &["B"]);
        let new = engine(&b2, &["B"]);
        assert_eq!(old.bytes("A"), new.bytes("A"));
        assert_ne!(old.bytes("B"), new.bytes("B"));
        assert_ne!(old.bytes("A"), old.bytes("B"));
        let without_c = engine(&b1, &["B"]);
        let with_c = engine(&b1, &["B", "C"]);
        assert_ne!(without_c.bytes("C"), with_c.bytes("C"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

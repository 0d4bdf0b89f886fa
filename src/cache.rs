//! The response cache: a byte-bounded `moka::future::Cache` of upstream 200 responses,
//! kept past their freshness for stale serving, plus a small negative cache of 401s per
//! deployment key and route.
//!
//! moka bounds the bytes and picks what to evict; an entry's lifetime and the purges of
//! one deployment are checked by the cache itself as an entry is read ([`entry`],
//! [`purges`]), and a periodic sweep removes what they hide ([`sweep`]). moka's per-entry
//! expiry and invalidation closures would do the same at ~80 bytes more per entry
//! (docs/memory.md).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as StdInstant};

use tokio::time::Instant;

use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::ops::compute::{CompResult, Op};
use moka::policy::EvictionPolicy;

use crate::config::{CacheConfig, Eviction};
use crate::key::{CacheKey, KeyHasher, RouteFamily};

pub use entry::CachedResponse;
use purges::Purges;

/// The entries a segment of `max_bytes` holds when they weigh `typical_weight` each,
/// capped at 2^20 so a huge budget does not allocate a huge table at start (past it, the
/// map grows as it fills).
fn initial_capacity(max_bytes: u64, typical_weight: u64) -> usize {
    usize::try_from(max_bytes / typical_weight)
        .unwrap_or(usize::MAX)
        .min(1 << 20)
}

/// What a typical `/v1/vardata` entry weighs (measured: ~990 bytes).
const TYPICAL_ENTRY_WEIGHT: u64 = 1024;

/// A remembered 401 leaves the negative cache its freshness plus its grace after it was
/// stored (the response cache checks its entries' lifetimes itself: [`ResponseCache::get`]).
struct PerEntryTtl;

impl<K> Expiry<K, CachedResponse> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _: &K,
        value: &CachedResponse,
        _: StdInstant,
    ) -> Option<Duration> {
        Some(value.lifetime())
    }

    /// A refreshed 401 gets its own lifetime (moka's default keeps the old deadline),
    /// counted from its fetch.
    fn expire_after_update(
        &self,
        _: &K,
        value: &CachedResponse,
        _: StdInstant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.lifetime().saturating_sub(value.fetched_at.elapsed()))
    }
}

/// The cache handle; clones share the same store.
///
/// Two segments, each bounded in bytes: flag configurations (`/sdk/v2/flags`, `/v1/flags`:
/// few, large) get `cache.flags_percent` of `cache.max_bytes`, every other answer (many,
/// small) the rest. A burst of large configurations then never evicts answers by the
/// hundred thousand (whose freed memory the allocator could not give to the
/// configurations: RSS would rise past the bound, docs/memory.md), nor answers the
/// configurations.
#[derive(Clone)]
pub struct ResponseCache {
    /// Answers (`/v1/vardata`, `/sdk/v2/vardata`, `/sdk/vardata`).
    answers: Segment,
    /// Flag configurations.
    flags: Segment,
    /// (Route, deployment key) → the upstream's 401 for that key on that route, for
    /// `cache.negative_ttl_s`.
    negative: Cache<Denied, CachedResponse>,
    /// 401s inserted into `negative` and not yet reported removed by its listener: while
    /// it is zero (the usual case) a miss skips the lookup. Counts up before an insert and
    /// down after moka's removal, so it is never zero while an entry may be there.
    negative_held: Arc<AtomicU64>,
    /// Entries removed so far by cause (size, expired, explicit, replaced), counted by
    /// moka's eviction listener during its maintenance, off the hit path.
    removed: Arc<[AtomicU64; 4]>,
    /// The purges of one deployment, by generation ([`purges`]).
    purges: Arc<Purges>,
    /// Raised before every purge and removal, so that a variant inserted across one is
    /// taken out again ([`ResponseCache::add_variant`]).
    epoch: Arc<AtomicU64>,
    /// Purges and removals in progress: raised before [`ResponseCache::epoch`] and
    /// lowered once moka has the invalidation, so that with `epoch` it works as a
    /// seqlock for [`ResponseCache::add_variant`].
    purging: Arc<AtomicU64>,
    max_bytes: u64,
    #[cfg(test)]
    put_hook: Option<Arc<variants::PutHook>>,
    /// Holds add_variant before its cleanup (tests only).
    #[cfg(test)]
    cleanup_hook: Option<Arc<variants::PutHook>>,
}

/// The cache's size and removals, for metrics and `/admin/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheCounts {
    pub entries: u64,
    pub weighted_bytes: u64,
    /// `cache.max_bytes`.
    pub capacity_bytes: u64,
    /// Removed entries by cause: evicted for room, expired, invalidated, replaced.
    pub removed: [u64; 4],
    /// The answers' segment and the flag configurations'.
    pub answers: SegmentCounts,
    pub flags: SegmentCounts,
}

/// One segment's size and bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SegmentCounts {
    pub entries: u64,
    pub weighted_bytes: u64,
    pub capacity_bytes: u64,
}

impl SegmentCounts {
    fn of(segment: &Segment) -> SegmentCounts {
        SegmentCounts {
            entries: segment.entry_count(),
            weighted_bytes: segment.weighted_size(),
            capacity_bytes: segment.policy().max_capacity().unwrap_or(0),
        }
    }
}

/// An entry with a body this large is weighed as it is inserted ([`ResponseCache::insert`]).
const LARGE_ENTRY_BYTES: usize = 64 * 1024;

/// (Deployment key, route) pairs remembered as unauthorized at once; a flood of distinct
/// bad keys cannot grow this past it.
const NEGATIVE_ENTRIES: u64 = 10_000;

/// What a remembered 401 is for: one deployment key on one route. A key can be refused on
/// one route and accepted on another (the upstream decides per endpoint), so a 401 from
/// `/sdk/v2/flags` says nothing about `/v1/vardata`. Each [`RouteFamily`] is one upstream
/// path, so this is exactly where the 401 came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Denied {
    route: RouteFamily,
    deployment: Box<str>,
}

impl Denied {
    fn new(route: RouteFamily, deployment: &str) -> Denied {
        Denied {
            route,
            deployment: deployment.into(),
        }
    }
}

/// One segment of the cache: a moka cache bounded in bytes.
type Segment = Cache<CacheKey, CachedResponse, KeyHasher>;

/// What a typical flag configuration weighs, to size the flags segment's map.
const TYPICAL_FLAGS_WEIGHT: u64 = 64 * 1024;

/// A segment of `max_bytes`, its map sized for entries of `typical_weight`, counting its
/// removals into `counts`.
fn segment(
    max_bytes: u64,
    typical_weight: u64,
    eviction: Eviction,
    counts: Arc<[AtomicU64; 4]>,
) -> Segment {
    Cache::builder()
        .max_capacity(max_bytes)
        .weigher(|key: &CacheKey, value: &CachedResponse| value.weight(key))
        // Sized up front for the entries a full segment of typical entries holds, so the
        // map is not rebuilt again and again while it fills (measured: a miss pays ~6 %
        // more throughput and ~20 % more p99 without). Not for the most entries the budget
        // could hold: removed entries linger in moka's map until it is rebuilt, more of
        // them the larger it is, and a map sized for 400-byte entries held 60-90 MiB of
        // them past the weight under constant eviction (docs/memory.md).
        .initial_capacity(initial_capacity(max_bytes, typical_weight))
        .eviction_policy(match eviction {
            Eviction::Lru => EvictionPolicy::lru(),
            Eviction::TinyLfu => EvictionPolicy::tiny_lfu(),
        })
        .eviction_listener(move |_, value: CachedResponse, cause| {
            let at = match cause {
                RemovalCause::Size => 0,
                // Entries past their lifetime are removed explicitly, as they are read or
                // swept.
                RemovalCause::Expired => 1,
                RemovalCause::Explicit | RemovalCause::Replaced
                    if value.expired(Instant::now()) =>
                {
                    1
                }
                RemovalCause::Explicit => 2,
                RemovalCause::Replaced => 3,
            };
            counts[at].fetch_add(1, Ordering::Relaxed);
        })
        .build_with_hasher(KeyHasher::default())
}

impl ResponseCache {
    pub fn new(config: &CacheConfig) -> ResponseCache {
        let removed: Arc<[AtomicU64; 4]> = Arc::default();
        let flags_bytes = config.flags_bytes();
        let answers = segment(
            config.max_bytes - flags_bytes,
            TYPICAL_ENTRY_WEIGHT,
            config.eviction,
            removed.clone(),
        );
        let flags = segment(
            flags_bytes,
            TYPICAL_FLAGS_WEIGHT,
            config.eviction,
            removed.clone(),
        );
        let negative_held = Arc::new(AtomicU64::new(0));
        let held = negative_held.clone();
        let negative = Cache::builder()
            .max_capacity(NEGATIVE_ENTRIES)
            .support_invalidation_closures()
            .expire_after(PerEntryTtl)
            .eviction_listener(move |_, _, _| {
                held.fetch_sub(1, Ordering::AcqRel);
            })
            .build();
        ResponseCache {
            answers,
            flags,
            negative,
            negative_held,
            removed,
            purges: Arc::default(),
            epoch: Arc::default(),
            purging: Arc::default(),
            max_bytes: config.max_bytes,
            #[cfg(test)]
            put_hook: None,
            #[cfg(test)]
            cleanup_hook: None,
        }
    }

    /// The remembered 401 for `key`'s deployment key on `key`'s route, if any.
    pub async fn unauthorized(&self, key: &CacheKey) -> Option<CachedResponse> {
        if self.negative_held.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.negative
            .get(&Denied::new(key.route(), key.deployment()))
            .await
    }

    /// Remembers the upstream's 401 to `key`, for its deployment key on its route.
    pub async fn remember_unauthorized(&self, key: &CacheKey, response: CachedResponse) {
        self.negative_held.fetch_add(1, Ordering::AcqRel);
        let denied = Denied::new(key.route(), key.deployment());
        self.negative.insert(denied, response).await;
    }

    /// Drops one deployment's entries, and its remembered 401s on every route: they stop
    /// being served at once, and are removed as they are read or swept ([`purges`]).
    pub async fn invalidate_deployment(&self, deployment: &str) {
        self.invalidate_deployment_now(deployment);
    }

    /// [`ResponseCache::invalidate_deployment`] from sync code.
    pub fn invalidate_deployment_now(&self, deployment: &str) {
        let _purging = self.begin_purge();
        if !self.purges.purge(deployment) {
            tracing::warn!(
                remembered = purges::MAX_PURGED_DEPLOYMENTS,
                "too many deployments purged one by one since the last purge of everything: dropping every entry"
            );
            self.drop_everything();
        }
        // Remembered 401s are few (and usually none): a predicate on them is cheap.
        let owned: Box<str> = deployment.into();
        let denied = move |d: &Denied, _: &CachedResponse| d.deployment == owned;
        if self.negative.invalidate_entries_if(denied).is_err() {
            self.negative.invalidate_all();
        }
    }

    /// The entry stored for `key`, unless it is past its lifetime or hidden by a purge of
    /// its deployment (then it is removed).
    pub async fn get(&self, key: &CacheKey) -> Option<CachedResponse> {
        let entry = self.segment(key).get(key).await?;
        if self.servable(key, &entry, Instant::now()) {
            return Some(entry);
        }
        self.drop_entry(key, &entry).await;
        None
    }

    /// Whether `entry`, stored for `key`, may still be served at `now`.
    fn servable(&self, key: &CacheKey, entry: &CachedResponse, now: Instant) -> bool {
        !entry.expired(now) && !self.purges.hides(key, entry.generation)
    }

    /// Removes `key`'s entry if it is still `entry` (the same body: a variant added to it
    /// keeps it, a refill has its own); returns whether it did.
    async fn drop_entry(&self, key: &CacheKey, entry: &CachedResponse) -> bool {
        let result = self
            .segment(key)
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let same = current.is_some_and(|c| c.value().same_body(entry));
                std::future::ready(if same { Op::Remove } else { Op::Nop })
            })
            .await;
        matches!(result, CompResult::Removed(_))
    }

    /// Stores `value` for `key`; serialized with [`ResponseCache::add_variant`] on the
    /// same key, so a variant of an older entry never replaces it.
    ///
    /// moka weighs an insert (and evicts for it) in its next maintenance, a batch later;
    /// until then the entry is held but not counted. A large one (a flag configuration)
    /// is weighed before this returns, so a burst of them cannot hold many times their
    /// share of `cache.max_bytes` uncounted.
    pub async fn insert(&self, key: CacheKey, mut value: CachedResponse) {
        value.generation = self.purges.current();
        let large = value.body.len() >= LARGE_ENTRY_BYTES;
        let segment = self.segment(&key);
        segment
            .entry(key)
            .and_upsert_with(|_| std::future::ready(value))
            .await;
        if large {
            segment.run_pending_tasks().await;
        }
    }

    /// Drops `key`'s entry.
    pub async fn remove(&self, key: &CacheKey) {
        let _purging = self.begin_purge();
        self.segment(key).invalidate(key).await;
    }

    /// Drops every entry.
    pub fn invalidate_all(&self) {
        let _purging = self.begin_purge();
        self.drop_everything();
        self.negative.invalidate_all();
    }

    /// Hides every entry at once (by generation: [`purges`]), and has moka drop them.
    fn drop_everything(&self) {
        self.purges.purge_all();
        self.answers.invalidate_all();
        self.flags.invalidate_all();
    }

    /// Marks a purge or removal in progress until the guard drops (also when its future
    /// is dropped half-way), and raises the epoch.
    fn begin_purge(&self) -> Purging {
        self.purging.fetch_add(1, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        Purging(self.purging.clone())
    }

    /// Entries currently held (approximate until pending maintenance runs).
    pub fn entry_count(&self) -> u64 {
        self.answers.entry_count() + self.flags.entry_count()
    }

    /// Weighted bytes currently held (approximate until pending maintenance runs).
    pub fn weighted_size(&self) -> u64 {
        self.answers.weighted_size() + self.flags.weighted_size()
    }

    /// Size, bound and removals so far (approximate until pending maintenance runs).
    pub fn counts(&self) -> CacheCounts {
        let answers = SegmentCounts::of(&self.answers);
        let flags = SegmentCounts::of(&self.flags);
        CacheCounts {
            entries: answers.entries + flags.entries,
            weighted_bytes: answers.weighted_bytes + flags.weighted_bytes,
            capacity_bytes: self.max_bytes,
            removed: self.removed.each_ref().map(|n| n.load(Ordering::Relaxed)),
            answers,
            flags,
        }
    }

    /// Applies pending inserts and evictions, so the counts above are exact.
    pub async fn run_pending_tasks(&self) {
        self.answers.run_pending_tasks().await;
        self.flags.run_pending_tasks().await;
    }

    /// The segment `key`'s entry lives in.
    fn segment(&self, key: &CacheKey) -> &Segment {
        if key.route().is_flags() {
            &self.flags
        } else {
            &self.answers
        }
    }
}

/// A purge in progress ([`ResponseCache::begin_purge`]).
struct Purging(Arc<AtomicU64>);

impl Drop for Purging {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

mod entry;
mod purges;
mod sweep;
mod variants;
pub mod weight;

pub use sweep::run_sweeper;

pub use variants::Variants;

#[cfg(test)]
mod tests;

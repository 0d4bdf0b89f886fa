//! The response cache: a byte-bounded `moka::future::Cache` of upstream 200 responses,
//! kept past their freshness for stale serving, plus a small negative cache of 401s per
//! deployment key and route.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as StdInstant};

use tokio::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;

use crate::config::{CacheConfig, Eviction};
use crate::key::{CacheKey, KeyHasher, RouteFamily};
use crate::upstream::UpstreamResponse;

/// What is stored: status (200, or 401 in the negative cache), content type, body, and
/// the fetch time with the entry's lifetimes.
///
/// Kept small (it sits inline in moka's entry): the content type of almost every answer
/// costs no allocation, and the lifetimes are whole seconds.
#[derive(Debug, Clone)]
pub struct CachedResponse {
    pub status: StatusCode,
    content_type: ContentType,
    /// The body in an allocation of its own, exactly its length ([`CachedResponse::body`]
    /// hands it out as `Bytes` without a copy).
    body: Arc<[u8]>,
    /// When the upstream answered; `Age` counts from here.
    pub fetched_at: Instant,
    /// How long the entry is fresh, from `fetched_at`, in seconds.
    fresh_s: u32,
    /// How long past freshness the entry is kept for stale serving, in seconds.
    grace_s: u32,
    /// Compressed bodies made so far ([`variants`]); `None` until the first.
    pub variants: Option<Arc<Variants>>,
}

/// The content type of almost every answer, stored without an allocation.
const JSON: &str = "application/json";
static JSON_VALUE: HeaderValue = HeaderValue::from_static(JSON);

/// A stored content type: none, JSON (no allocation), or another value.
#[derive(Debug, Clone)]
enum ContentType {
    Absent,
    Json,
    Other(Box<HeaderValue>),
}

impl ContentType {
    /// `value` as stored: copied into an allocation of its own, so that it does not keep
    /// the connection's read buffer it was parsed from alive.
    fn stored(value: Option<&HeaderValue>) -> ContentType {
        match value {
            None => ContentType::Absent,
            Some(ct) if ct == JSON && !ct.is_sensitive() => ContentType::Json,
            Some(ct) => {
                let mut copy =
                    HeaderValue::from_bytes(ct.as_bytes()).unwrap_or_else(|_| ct.clone());
                copy.set_sensitive(ct.is_sensitive());
                ContentType::Other(Box::new(copy))
            }
        }
    }

    fn get(&self) -> Option<&HeaderValue> {
        match self {
            ContentType::Absent => None,
            ContentType::Json => Some(&JSON_VALUE),
            ContentType::Other(value) => Some(value),
        }
    }

    /// Heap bytes beside the entry.
    fn heap_bytes(&self) -> usize {
        match self {
            ContentType::Other(value) => {
                weight::allocation(std::mem::size_of::<HeaderValue>())
                    + weight::allocation(value.len())
            }
            _ => 0,
        }
    }
}

/// A lifetime in whole seconds, rounded up (every lifetime evalgate sets is whole seconds:
/// the TTLs, `max-age`, the stale windows), saturating past a century.
fn secs(d: Duration) -> u32 {
    let whole = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(whole).unwrap_or(u32::MAX)
}

/// What `Bytes` allocates when a body copied into it is first cloned (its shared count):
/// held by compressed variants.
const BYTES_SHARED: usize = 24;

impl CachedResponse {
    /// An entry of `body` with `content_type`, fetched at `fetched_at`, fresh for
    /// `fresh_for` then kept `grace` longer for stale serving.
    pub fn new(
        status: StatusCode,
        content_type: Option<&HeaderValue>,
        body: &[u8],
        fetched_at: Instant,
        fresh_for: Duration,
        grace: Duration,
    ) -> CachedResponse {
        CachedResponse {
            status,
            content_type: ContentType::stored(content_type),
            body: Arc::from(body),
            fetched_at,
            fresh_s: secs(fresh_for),
            grace_s: secs(grace),
            variants: None,
        }
    }

    /// The entry to store for an upstream answer with `status`.
    ///
    /// Body and content type are copied into allocations of their own: as hyper reads
    /// them they are slices of the connection's read buffer (8 KiB and more), and a
    /// stored slice would keep that whole buffer alive for the entry's lifetime, so that
    /// a full cache would hold many times `cache.max_bytes` (and every miss would grow
    /// the heap by pages).
    pub fn stored(
        status: StatusCode,
        upstream: &UpstreamResponse,
        fetched_at: Instant,
        fresh_for: Duration,
        grace: Duration,
    ) -> CachedResponse {
        CachedResponse::new(
            status,
            upstream.headers.get(http::header::CONTENT_TYPE),
            &upstream.body,
            fetched_at,
            fresh_for,
            grace,
        )
    }

    /// The stored body, as `Bytes` sharing the entry's allocation (no copy; a handle of a
    /// few words is allocated for it).
    pub fn body(&self) -> Bytes {
        Bytes::from_owner(self.body.clone())
    }

    /// The stored body's bytes.
    pub fn body_slice(&self) -> &[u8] {
        &self.body
    }

    /// The stored `Content-Type`, if the answer had one.
    pub fn content_type(&self) -> Option<&HeaderValue> {
        self.content_type.get()
    }

    /// How long the entry is fresh, from `fetched_at`.
    pub fn fresh_for(&self) -> Duration {
        Duration::from_secs(self.fresh_s.into())
    }

    /// How long past freshness the entry is kept for stale serving.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_s.into())
    }

    /// Shortens the lifetimes to at most `fresh_for` and `grace`.
    pub fn cap_lifetimes(&mut self, fresh_for: Duration, grace: Duration) {
        self.fresh_s = self.fresh_s.min(secs(fresh_for));
        self.grace_s = self.grace_s.min(secs(grace));
    }

    /// Freshness plus grace: how long after its fetch the entry leaves the cache.
    pub fn lifetime(&self) -> Duration {
        self.fresh_for() + self.grace()
    }

    /// What the entry and its key cost in memory ([`weight`]): moka's structures, the
    /// key's and the body's allocations, the content type's and the compressed variants'.
    fn weight(&self, key: &CacheKey) -> u32 {
        let body = weight::allocation(2 * std::mem::size_of::<usize>() + self.body.len());
        let bytes = weight::MOKA_PER_ENTRY
            + weight::moka_value_entry(std::mem::size_of::<CachedResponse>())
            + weight::allocation(key.heap_bytes())
            + body
            + self.content_type.heap_bytes()
            + self.variants.as_ref().map_or(0, |v| v.heap_bytes());
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }

    /// How long past its freshness the entry is at `now`; `None` while fresh.
    pub fn stale_by(&self, now: Instant) -> Option<Duration> {
        let age = now.saturating_duration_since(self.fetched_at);
        age.checked_sub(self.fresh_for())
    }

    /// Whole seconds since the fetch, for the `Age` header.
    pub fn age_secs(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.fetched_at).as_secs()
    }

    /// The entry as the upstream response it was stored from.
    pub fn into_upstream_response(self) -> UpstreamResponse {
        let mut headers = http::HeaderMap::new();
        if let Some(ct) = self.content_type.get() {
            headers.insert(http::header::CONTENT_TYPE, ct.clone());
        }
        UpstreamResponse {
            status: self.status,
            headers,
            body: self.body(),
        }
    }
}

/// The entries a full cache of typical answers holds (they weigh about 1 KiB:
/// docs/memory.md), capped at 2^20 so a huge budget does not allocate a huge table at
/// start (past it, the map grows as it fills).
fn initial_capacity(max_bytes: u64) -> usize {
    usize::try_from(max_bytes / TYPICAL_ENTRY_WEIGHT)
        .unwrap_or(usize::MAX)
        .min(1 << 20)
}

/// What a typical `/v1/vardata` entry weighs (measured: ~1,050 bytes).
const TYPICAL_ENTRY_WEIGHT: u64 = 1024;

/// Each entry leaves the cache its freshness plus its grace after it was stored; reads do
/// not extend it (like Amplitude's CDN, the lifetime counts from the fetch).
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

    /// A refreshed answer gets its own lifetime (moka's default keeps the old deadline),
    /// counted from its fetch: an entry replaced to add a compressed variant keeps its
    /// deadline.
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
#[derive(Clone)]
pub struct ResponseCache {
    inner: Cache<CacheKey, CachedResponse, KeyHasher>,
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

impl ResponseCache {
    pub fn new(config: &CacheConfig) -> ResponseCache {
        let removed: Arc<[AtomicU64; 4]> = Arc::default();
        let counts = removed.clone();
        let inner = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|key: &CacheKey, value: &CachedResponse| value.weight(key))
            // Sized up front for the entries a full cache of typical answers holds, so the
            // map is not rebuilt again and again while it fills (measured: a miss pays
            // ~6 % more throughput and ~20 % more p99 without). Not for the most entries
            // the budget could hold: removed entries linger in moka's map until it is
            // rebuilt, more of them the larger it is, and a map sized for 400-byte entries
            // held 60-90 MiB of them past the weight under constant eviction
            // (docs/memory.md).
            .initial_capacity(initial_capacity(config.max_bytes))
            .expire_after(PerEntryTtl)
            .eviction_policy(match config.eviction {
                Eviction::Lru => EvictionPolicy::lru(),
                Eviction::TinyLfu => EvictionPolicy::tiny_lfu(),
            })
            // Purging one deployment marks its entries with a predicate moka applies
            // lazily, instead of a scan on the request path.
            .support_invalidation_closures()
            .eviction_listener(move |_, _, cause| {
                let at = match cause {
                    RemovalCause::Size => 0,
                    RemovalCause::Expired => 1,
                    RemovalCause::Explicit => 2,
                    RemovalCause::Replaced => 3,
                };
                counts[at].fetch_add(1, Ordering::Relaxed);
            })
            .build_with_hasher(KeyHasher::default());
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
            inner,
            negative,
            negative_held,
            removed,
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
    /// being served at once, and are removed by moka's maintenance in the background.
    pub async fn invalidate_deployment(&self, deployment: &str) {
        self.invalidate_deployment_now(deployment);
    }

    /// [`ResponseCache::invalidate_deployment`] from sync code.
    pub fn invalidate_deployment_now(&self, deployment: &str) {
        let _purging = self.begin_purge();
        let owned: Box<str> = deployment.into();
        let predicate = move |key: &CacheKey, _: &CachedResponse| key.deployment() == &*owned;
        if self.inner.invalidate_entries_if(predicate).is_err() {
            // Only fails without support_invalidation_closures(), which is always set.
            self.inner.invalidate_all();
        }
        // Remembered 401s are few (and usually none): a predicate on them is cheap.
        let owned: Box<str> = deployment.into();
        let denied = move |d: &Denied, _: &CachedResponse| d.deployment == owned;
        if self.negative.invalidate_entries_if(denied).is_err() {
            self.negative.invalidate_all();
        }
    }

    pub async fn get(&self, key: &CacheKey) -> Option<CachedResponse> {
        self.inner.get(key).await
    }

    /// Stores `value` for `key`; serialized with [`ResponseCache::add_variant`] on the
    /// same key, so a variant of an older entry never replaces it.
    ///
    /// moka weighs an insert (and evicts for it) in its next maintenance, a batch later;
    /// until then the entry is held but not counted. A large one (a flag configuration)
    /// is weighed before this returns, so a burst of them cannot hold many times their
    /// share of `cache.max_bytes` uncounted.
    pub async fn insert(&self, key: CacheKey, value: CachedResponse) {
        let large = value.body.len() >= LARGE_ENTRY_BYTES;
        self.inner
            .entry(key)
            .and_upsert_with(|_| std::future::ready(value))
            .await;
        if large {
            self.inner.run_pending_tasks().await;
        }
    }

    /// Drops `key`'s entry.
    pub async fn remove(&self, key: &CacheKey) {
        let _purging = self.begin_purge();
        self.inner.invalidate(key).await;
    }

    /// Drops every entry.
    pub fn invalidate_all(&self) {
        let _purging = self.begin_purge();
        self.inner.invalidate_all();
        self.negative.invalidate_all();
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
        self.inner.entry_count()
    }

    /// Weighted bytes currently held (approximate until pending maintenance runs).
    pub fn weighted_size(&self) -> u64 {
        self.inner.weighted_size()
    }

    /// Size, bound and removals so far (approximate until pending maintenance runs).
    pub fn counts(&self) -> CacheCounts {
        CacheCounts {
            entries: self.entry_count(),
            weighted_bytes: self.weighted_size(),
            capacity_bytes: self.max_bytes,
            removed: self.removed.each_ref().map(|n| n.load(Ordering::Relaxed)),
        }
    }

    /// Applies pending inserts and evictions, so the counts above are exact.
    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await;
    }
}

/// A purge in progress ([`ResponseCache::begin_purge`]).
struct Purging(Arc<AtomicU64>);

impl Drop for Purging {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

mod variants;
pub mod weight;

pub use variants::Variants;

#[cfg(test)]
mod tests;

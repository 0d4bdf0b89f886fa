//! One stored answer: status, content type, body, its fetch time and lifetimes, and the
//! purge generation it was stored under; kept small, since it sits inline in moka's entry.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use tokio::time::Instant;

use super::{Variants, weight};
use crate::key::CacheKey;
use crate::upstream::UpstreamResponse;

/// What is stored: status (200, or 401 in the negative cache), content type, body, the
/// fetch time with the entry's lifetimes, and the purge generation it was stored under.
///
/// Kept small (it sits inline in moka's entry): the content type of almost every answer
/// costs no allocation, and the lifetimes are whole seconds.
#[derive(Debug, Clone)]
pub struct CachedResponse {
    pub status: StatusCode,
    content_type: ContentType,
    /// The body in an allocation of its own, exactly its length ([`CachedResponse::body`]
    /// hands it out as `Bytes` without a copy).
    pub(super) body: Arc<[u8]>,
    /// When the upstream answered; `Age` counts from here.
    pub fetched_at: Instant,
    /// How long the entry is fresh, from `fetched_at`, in seconds.
    fresh_s: u32,
    /// How long past freshness the entry is kept for stale serving, in seconds.
    grace_s: u32,
    /// The purge generation when the entry was stored
    /// ([`super::purges`]): a purge of its deployment since then hides it.
    pub(super) generation: u64,
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
pub(super) const BYTES_SHARED: usize = 24;

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
            generation: 0,
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

    /// Freshness plus grace: how long after its fetch the entry is served at all.
    pub fn lifetime(&self) -> Duration {
        self.fresh_for() + self.grace()
    }

    /// Whether the entry has outlived its freshness and grace at `now`: it is no longer
    /// served, and goes at the next read or sweep ([`super::sweep`]).
    pub fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.fetched_at) >= self.lifetime()
    }

    /// What the entry and its key cost in memory ([`weight`]): moka's structures, the
    /// key's and the body's allocations, the content type's and the compressed variants'.
    pub(super) fn weight(&self, key: &CacheKey) -> u32 {
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

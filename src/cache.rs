//! The response cache: a byte-bounded `moka::future::Cache` of upstream 200 responses.

use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use http::HeaderValue;
use moka::future::Cache;

use crate::config::CacheConfig;
use crate::key::CacheKey;
use crate::upstream::UpstreamResponse;

/// What is stored for a key: the status is always 200, so only the content type, the
/// body and the fetch time are kept.
#[derive(Debug, Clone)]
pub struct CachedResponse {
    pub content_type: Option<HeaderValue>,
    pub body: Bytes,
    /// When the upstream answered; `Age` counts from here.
    pub fetched_at: Instant,
}

/// Fixed per-entry bookkeeping counted against `cache.max_bytes` (moka's own node, the
/// `Arc`s and the map slot), so a flood of tiny entries cannot exceed the budget much.
const ENTRY_OVERHEAD: usize = 128;

impl CachedResponse {
    /// Whole seconds since the fetch, for the `Age` header.
    pub fn age_secs(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.fetched_at).as_secs()
    }

    /// The entry as the upstream response it was stored from.
    pub fn into_upstream_response(self) -> UpstreamResponse {
        let mut headers = http::HeaderMap::new();
        if let Some(ct) = self.content_type {
            headers.insert(http::header::CONTENT_TYPE, ct);
        }
        UpstreamResponse {
            status: http::StatusCode::OK,
            headers,
            body: self.body,
        }
    }

    fn weight(&self, key: &CacheKey) -> u32 {
        let bytes = key.weight()
            + self.body.len()
            + self.content_type.as_ref().map_or(0, |v| v.len())
            + ENTRY_OVERHEAD;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// The cache handle; clones share the same store.
#[derive(Clone)]
pub struct ResponseCache {
    inner: Cache<CacheKey, CachedResponse>,
}

impl ResponseCache {
    pub fn new(config: &CacheConfig) -> ResponseCache {
        let inner = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|key: &CacheKey, value: &CachedResponse| value.weight(key))
            .time_to_live(Duration::from_secs(config.ttl_s))
            .build();
        ResponseCache { inner }
    }

    pub async fn get(&self, key: &CacheKey) -> Option<CachedResponse> {
        self.inner.get(key).await
    }

    pub async fn insert(&self, key: CacheKey, value: CachedResponse) {
        self.inner.insert(key, value).await;
    }

    /// Entries currently held (approximate until pending maintenance runs).
    pub fn entry_count(&self) -> u64 {
        self.inner.entry_count()
    }

    /// Weighted bytes currently held (approximate until pending maintenance runs).
    pub fn weighted_size(&self) -> u64 {
        self.inner.weighted_size()
    }

    /// Applies pending inserts and evictions, so the counts above are exact.
    pub async fn run_pending_tasks(&self) {
        self.inner.run_pending_tasks().await;
    }
}

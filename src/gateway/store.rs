//! What a fill keeps: a storable JSON 200 in the cache (with the upstream's gzip body as
//! its gzip variant), a 401 in the negative cache; nothing fetched across a purge.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use tokio::time::Instant;

use super::Gateway;
use super::decode::undecoded;
use crate::cache::{CachedResponse, Variants};
use crate::compression::Encoding;
use crate::error::{GatewayError, UpstreamError};
use crate::freshness::{self, Storage};
use crate::key::CacheKey;
use crate::upstream::UpstreamResponse;

impl Gateway {
    /// Stores what may be stored of `upstream`'s answer to `key` in L1: a storable JSON
    /// 200, or a 401 (negative cache). Returns the stored entry, for the shared tier, or
    /// the error a 200 that is not the expected JSON becomes. Nothing is stored when a
    /// purge came in since the fetch started (`generation`).
    pub(super) async fn store(
        &self,
        key: &CacheKey,
        upstream: &UpstreamResponse,
        gzip: Option<Bytes>,
        generation: u64,
    ) -> Result<Option<CachedResponse>, GatewayError> {
        // A coding evalgate cannot decode is relayed, never stored.
        if undecoded(upstream) {
            return Ok(None);
        }
        // Lifetimes and `Age` count from when the answer arrived.
        let fetched_at = Instant::now();
        let cache = &self.inner.live.cache();
        let current = || self.inner.generation.load(Ordering::SeqCst) == generation;
        match upstream.status {
            StatusCode::OK => {
                // Evaluations are JSON objects, flag configurations JSON arrays.
                if !is_json_document(&upstream.body, opener(key)) {
                    self.inner.metrics.upstream_invalid();
                    return Err(UpstreamError::NotJson.into());
                }
                let default_ttl = if key.route().is_flags() {
                    cache.flags_ttl_s
                } else {
                    cache.ttl_s
                };
                let storage = freshness::storage(
                    &upstream.headers,
                    Duration::from_secs(default_ttl),
                    Duration::from_secs(cache.max_ttl_s),
                    cache.ignore_upstream_cache_control,
                );
                let Storage::FreshFor(fresh_for) = storage else {
                    return Ok(None);
                };
                if !current() {
                    return Ok(None);
                }
                let grace = cache.stale_while_revalidate_s.max(cache.stale_if_error_s);
                let mut entry = CachedResponse::stored(
                    StatusCode::OK,
                    upstream,
                    fetched_at,
                    fresh_for,
                    Duration::from_secs(grace),
                );
                // The upstream's gzip body is this entry's gzip variant, for free.
                entry.variants = gzip.map(|g| Arc::new(Variants::one(Encoding::Gzip, g)));
                self.note_deployment(key.deployment());
                self.inner.cache.insert(key.clone(), entry.clone()).await;
                // A purge between the check above and the insert did not see this entry.
                if !current() {
                    self.inner.cache.remove(key).await;
                    return Ok(None);
                }
                Ok(Some(entry))
            }
            // Like a 200, a 401 fetched across a purge is not remembered: the purge may
            // be the operator re-enabling the key.
            StatusCode::UNAUTHORIZED if cache.negative_ttl_s > 0 && current() => {
                let entry = CachedResponse::stored(
                    StatusCode::UNAUTHORIZED,
                    upstream,
                    fetched_at,
                    Duration::from_secs(cache.negative_ttl_s),
                    Duration::ZERO,
                );
                // Known by its tag, so that a purge announced by another instance (the
                // key re-enabled) drops this 401 too.
                if let Some(shared) = &self.inner.shared {
                    shared.note(key.deployment());
                }
                self.inner
                    .cache
                    .remember_unauthorized(key, entry.clone())
                    .await;
                Ok(Some(entry))
            }
            _ => Ok(None),
        }
    }
}

/// The first byte of a valid answer for `key`: evaluations are JSON objects, flag
/// configurations JSON arrays.
fn opener(key: &CacheKey) -> u8 {
    if key.route().is_flags() { b'[' } else { b'{' }
}

/// Whether `body` is one JSON document starting with `opener` (`{` or `[`), validated
/// without building it.
fn is_json_document(body: &[u8], opener: u8) -> bool {
    let starts_right = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&opener);
    starts_right && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

//! Answers of the cache path in the encoding the client accepts: stored variants on
//! hits (made once), and the miss's answer.

use http::{Response, StatusCode, header};
use tokio::time::Instant;

use super::{Gateway, without_body};
use crate::cache::CachedResponse;
use crate::compression::{self, Accepted};
use crate::key::CacheKey;
use crate::response::{self, CacheStatus};
use crate::upstream::UpstreamResponse;

impl Gateway {
    /// A cached entry as a response, with its `Age` at `now`, in the encoding `accepted`
    /// asks for (200s only: a remembered 401 is served as stored).
    pub(super) async fn answer_entry(
        &self,
        key: &CacheKey,
        entry: &CachedResponse,
        now: Instant,
        cache: CacheStatus,
        head: bool,
        accepted: Accepted,
    ) -> Response<response::Body> {
        let compressor = &self.inner.compressor;
        let ct = entry.content_type();
        let age = entry.age_secs(now);
        let compressible = entry.status == StatusCode::OK && compressor.enabled();
        let encoding = compressible
            .then(|| compressor.choose(accepted, entry.body_slice().len()))
            .flatten();
        let mut encoding = encoding;
        let body = match encoding {
            Some(chosen) => compressor
                .stored(&self.inner.cache, key, entry, chosen)
                .await
                .or_else(|| {
                    // Compression is optional: busy, or cancelled, the answer is identity.
                    encoding = None;
                    Some(entry.body())
                }),
            None => Some(entry.body()),
        }
        .unwrap_or_default();
        let mut response = response::with_cache_headers(entry.status, ct, body, cache, age);
        if compressible {
            compression::mark(response.headers_mut(), encoding);
        }
        if head {
            without_body(response)
        } else {
            response
        }
    }

    /// A fetched 200 as a MISS: from the stored entry when the fill stored it (its
    /// variant is made once and kept), else compressed for this answer alone.
    pub(super) async fn answer_fill(
        &self,
        key: &CacheKey,
        upstream: &UpstreamResponse,
        accepted: Accepted,
    ) -> Response<response::Body> {
        let compressor = &self.inner.compressor;
        let ct = upstream.headers.get(header::CONTENT_TYPE);
        let chosen = compressor
            .enabled()
            .then(|| compressor.choose(accepted, upstream.body.len()))
            .flatten();
        let compressed = match chosen {
            None => None,
            Some(encoding) => match self.inner.cache.get(key).await {
                Some(entry) if entry.has_body(&upstream.body) => {
                    compressor
                        .stored(&self.inner.cache, key, &entry, encoding)
                        .await
                }
                _ => compressor.transient(&upstream.body, encoding).await,
            },
        };
        // Compression is optional: busy, or cancelled, the answer is identity.
        let encoding = chosen.filter(|_| compressed.is_some());
        let body = compressed.unwrap_or_else(|| upstream.body.clone());
        let mut response =
            response::with_cache_headers(StatusCode::OK, ct, body, CacheStatus::Miss, 0);
        if compressor.enabled() {
            compression::mark(response.headers_mut(), encoding);
        }
        response
    }
}

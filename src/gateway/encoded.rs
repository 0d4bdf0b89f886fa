//! Compression on the cache path: answers in the encoding the client accepts (stored
//! variants on hits, made once), and upstream answers decoded into the identity body
//! that is stored.

use bytes::Bytes;
use http::{Response, StatusCode, header};
use tokio::time::Instant;

use super::{Gateway, without_body};
use crate::cache::CachedResponse;
use crate::compression::codec::{self, Coded, DecodeError};
use crate::compression::{self, Accepted, BLOCKING_BYTES};
use crate::error::{GatewayError, UpstreamError};
use crate::key::CacheKey;
use crate::response::{self, CacheStatus};
use crate::upstream::UpstreamResponse;

/// An upstream answer ready to store and serve: identity, unless its coding is unknown
/// (then relayed as it came, never stored).
pub(super) struct Decoded {
    pub response: UpstreamResponse,
    /// The upstream's own gzip body, kept as the stored gzip variant.
    pub gzip: Option<Bytes>,
}

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
        let ct = entry.content_type.as_ref();
        let age = entry.age_secs(now);
        let compressible = entry.status == StatusCode::OK && compressor.enabled();
        let encoding = compressible
            .then(|| compressor.choose(accepted, entry.body.len()))
            .flatten();
        let body = match encoding {
            Some(encoding) => {
                compressor
                    .stored(&self.inner.cache, key, entry, encoding)
                    .await
            }
            None => entry.body.clone(),
        };
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
        let encoding = compressor
            .enabled()
            .then(|| compressor.choose(accepted, upstream.body.len()))
            .flatten();
        let body = match encoding {
            None => upstream.body.clone(),
            Some(encoding) => match self.inner.cache.get(key).await {
                Some(entry) if entry.has_body(&upstream.body) => {
                    compressor
                        .stored(&self.inner.cache, key, &entry, encoding)
                        .await
                }
                _ => compressor.transient(&upstream.body, encoding).await,
            },
        };
        let mut response =
            response::with_cache_headers(StatusCode::OK, ct, body, CacheStatus::Miss, 0);
        if compressor.enabled() {
            compression::mark(response.headers_mut(), encoding);
        }
        response
    }

    /// `upstream`'s answer in identity: a gzip, br or deflate body decoded (at most
    /// `upstream.max_response_bytes` of it; past that it is refused like a body too
    /// large), `Content-Encoding` and `Content-Length` dropped; an unknown coding left as
    /// it came.
    pub(super) async fn decoded(
        &self,
        mut upstream: UpstreamResponse,
    ) -> Result<Decoded, GatewayError> {
        let metrics = self.inner.metrics.compression();
        let coding = match codec::coded(&upstream.headers) {
            Coded::Identity => {
                return Ok(Decoded {
                    response: upstream,
                    gzip: None,
                });
            }
            Coded::Unknown => {
                metrics.decoded(None);
                return Ok(Decoded {
                    response: upstream,
                    gzip: None,
                });
            }
            Coded::Known(coding) => coding,
        };
        let max = self.inner.upstream.max_response_bytes();
        let body = upstream.body.clone();
        // Decoding expands a body several times over (JSON, 5-10x): past 8 KiB of input it
        // runs on the blocking pool like a compression of 64 KiB.
        let decoded = if body.len() <= BLOCKING_BYTES / 8 {
            codec::decode(coding, &body, max)
        } else {
            tokio::task::spawn_blocking(move || codec::decode(coding, &body, max))
                .await
                .unwrap_or(Err(DecodeError::Invalid))
        };
        let identity = match decoded {
            Ok(identity) => identity,
            Err(e) => {
                metrics.refused(coding);
                // The fill logs the error it becomes; this says which coding.
                tracing::debug!(coding = coding.as_str(), error = %e, "upstream body refused");
                return Err(match e {
                    DecodeError::TooLarge => UpstreamError::TooLarge,
                    DecodeError::Invalid => UpstreamError::Protocol(e.to_string()),
                }
                .into());
            }
        };
        metrics.decoded(Some(coding));
        let gzip = (coding == codec::Coding::Gzip
            && self.inner.compressor.enabled()
            && identity.len() >= self.inner.config.compression.min_bytes)
            .then(|| Bytes::copy_from_slice(&upstream.body));
        upstream.headers.remove(header::CONTENT_ENCODING);
        upstream.headers.remove(header::CONTENT_LENGTH);
        upstream.body = identity;
        Ok(Decoded {
            response: upstream,
            gzip,
        })
    }
}

/// Whether `upstream` came in a coding evalgate does not decode (relayed, never stored).
pub(super) fn undecoded(upstream: &UpstreamResponse) -> bool {
    codec::coded(&upstream.headers) != Coded::Identity
}

//! Answering a cacheable request: a fresh entry, a stale one (while it is refreshed, or
//! when the upstream fails), a remembered 401, or the one coalesced fetch, which stores
//! what may be stored.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{Response, StatusCode, header};
use tokio::time::Instant;

use super::{Gateway, without_body};
use crate::cache::CachedResponse;
use crate::coalesce::Outcome;
use crate::error::{GatewayError, UpstreamError};
use crate::freshness::{self, Storage};
use crate::key::CacheKey;
use crate::response::{self, CacheStatus};

impl Gateway {
    /// A cacheable request: answer from a fresh entry; from a stale one while it is
    /// refreshed in the background (within `cache.stale_while_revalidate_s`); else from the
    /// one coalesced fetch, falling back to a stale entry when the upstream fails (within
    /// `cache.stale_if_error_s`).
    pub(super) async fn cached(
        &self,
        key: CacheKey,
        head: bool,
        now: Instant,
    ) -> (Response<response::Body>, CacheStatus) {
        let cache = &self.inner.live.cache();
        let mut fallback = None;
        let mark = self.inner.flights.mark();
        if let Some(entry) = self.inner.cache.get(&key).await {
            match entry.stale_by(now) {
                None => {
                    return (
                        from_entry(&entry, now, CacheStatus::Hit, head),
                        CacheStatus::Hit,
                    );
                }
                Some(late) if late < Duration::from_secs(cache.stale_while_revalidate_s) => {
                    self.refresh_in_background(key);
                    return (
                        from_entry(&entry, now, CacheStatus::Stale, head),
                        CacheStatus::Stale,
                    );
                }
                Some(late) if late < Duration::from_secs(cache.stale_if_error_s) => {
                    fallback = Some(entry);
                }
                Some(_) => {}
            }
        }
        if let Some(denied) = self.inner.cache.unauthorized(&key).await {
            return (
                from_entry(&denied, now, CacheStatus::Hit, head),
                CacheStatus::Hit,
            );
        }
        let this = self.clone();
        let fetch_key = key.clone();
        let (outcome, joined) = self
            .inner
            .flights
            .join_or_start(&key, mark, move |recheck| async move {
                this.fetch_and_store(fetch_key, recheck).await
            })
            .await;
        if joined {
            self.inner.metrics.coalesced();
        }
        if let Some(entry) = fallback.filter(|_| upstream_failed(&outcome)) {
            let now = Instant::now();
            return (
                from_entry(&entry, now, CacheStatus::Stale, head),
                CacheStatus::Stale,
            );
        }
        let response = match outcome {
            Ok(upstream) if upstream.status == StatusCode::OK => {
                let ct = upstream.headers.get(header::CONTENT_TYPE);
                let body = upstream.body.clone();
                response::with_cache_headers(StatusCode::OK, ct, body, CacheStatus::Miss, 0)
            }
            // Not stored, so relayed whole: a 401 keeps its `WWW-Authenticate`, a 429 its
            // `Retry-After`.
            Ok(upstream) => response::relayed(
                upstream.status,
                &upstream.headers,
                upstream.body.clone(),
                CacheStatus::Miss,
            ),
            Err(err) => response::error(&err, Some(CacheStatus::Miss)),
        };
        let response = if head {
            without_body(response)
        } else {
            response
        };
        (response, CacheStatus::Miss)
    }

    /// Starts one refresh of `key` unless one is already running; nobody waits for it.
    fn refresh_in_background(&self, key: CacheKey) {
        let this = self.clone();
        let fetch_key = key.clone();
        self.inner.flights.start_if_idle(&key, async move {
            this.fetch_and_store(fetch_key, true).await
        });
    }

    /// The body of a flight: one upstream request for `key`. A storable 200 is stored
    /// before the flight ends, and a 401 remembered for its deployment key on its route;
    /// anything else is returned to the waiters and not stored, so an error never replaces
    /// an entry.
    /// `recheck`: a flight for this key may have landed since the request missed.
    async fn fetch_and_store(&self, key: CacheKey, recheck: bool) -> Outcome {
        // A request may have missed just before the previous flight for this key landed:
        // answer it from that flight's entry rather than asking the upstream again.
        let stored = match recheck {
            true => self.inner.cache.get(&key).await,
            false => None,
        };
        if let Some(entry) = stored.filter(|e| e.stale_by(Instant::now()).is_none()) {
            return Ok(Arc::new(entry.into_upstream_response()));
        }
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let origin = &self.inner.upstream;
        let sent = match origin.pipelined(&key) {
            Some(request) => self.exchange(origin.send_pipelined(request)).await,
            None => {
                let request = key
                    .upstream_request(origin.base())
                    .map_err(|_| GatewayError::Unforwardable)?;
                self.exchange(origin.send(request)).await
            }
        };
        let upstream = sent.inspect_err(|e| {
            if let GatewayError::Upstream(e) = e {
                tracing::warn!(error = %e, deployment = %crate::mask::Masked(key.deployment()), "upstream request failed");
            }
        })?;
        // Lifetimes and `Age` count from when the answer arrived.
        let fetched_at = Instant::now();
        let cache = &self.inner.live.cache();
        match upstream.status {
            StatusCode::OK => {
                // Evaluations are JSON objects, flag configurations JSON arrays.
                let opener = if key.route().is_flags() { b'[' } else { b'{' };
                if !is_json_document(&upstream.body, opener) {
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
                let current = self.inner.generation.load(Ordering::SeqCst) == generation;
                if let (Storage::FreshFor(fresh_for), true) = (storage, current) {
                    let grace = cache.stale_while_revalidate_s.max(cache.stale_if_error_s);
                    let entry = CachedResponse::stored(
                        StatusCode::OK,
                        &upstream,
                        fetched_at,
                        fresh_for,
                        Duration::from_secs(grace),
                    );
                    self.note_deployment(key.deployment());
                    self.inner.cache.insert(key, entry).await;
                }
            }
            // Like a 200, a 401 fetched across a purge is not remembered: the purge may
            // be the operator re-enabling the key.
            StatusCode::UNAUTHORIZED
                if cache.negative_ttl_s > 0
                    && self.inner.generation.load(Ordering::SeqCst) == generation =>
            {
                let entry = CachedResponse::stored(
                    StatusCode::UNAUTHORIZED,
                    &upstream,
                    fetched_at,
                    Duration::from_secs(cache.negative_ttl_s),
                    Duration::ZERO,
                );
                self.inner.cache.remember_unauthorized(&key, entry).await;
            }
            _ => {}
        }
        Ok(Arc::new(upstream))
    }
}

/// A cached entry as a response, with its `Age` at `now`.
fn from_entry(
    entry: &CachedResponse,
    now: Instant,
    cache: CacheStatus,
    head: bool,
) -> Response<response::Body> {
    let ct = entry.content_type.as_ref();
    let age = entry.age_secs(now);
    let response = response::with_cache_headers(entry.status, ct, entry.body.clone(), cache, age);
    if head {
        without_body(response)
    } else {
        response
    }
}

/// Whether an outcome is one where a stale entry beats the answer: the upstream could not
/// be reached, timed out, answered garbage, 5xx or 429, or evalgate's own in-flight limit.
fn upstream_failed(outcome: &Outcome) -> bool {
    match outcome {
        Ok(r) => r.status.is_server_error() || r.status == StatusCode::TOO_MANY_REQUESTS,
        Err(GatewayError::Upstream(_) | GatewayError::Overloaded) => true,
        Err(_) => false,
    }
}

/// Whether `body` is one JSON document starting with `opener` (`{` or `[`), validated
/// without building it.
fn is_json_document(body: &[u8], opener: u8) -> bool {
    let starts_right = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&opener);
    starts_right && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

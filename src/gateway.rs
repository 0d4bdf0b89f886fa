//! The request pipeline: normalize → cache → (coalesced) upstream → response.
//!
//! [`Gateway::handle`] is the whole data plane as one async function over any request
//! body, so tests and benches can drive it in-process; [`crate::server`] wires it to
//! sockets.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::access_log;
use crate::cache::{CachedResponse, ResponseCache};
use crate::coalesce::{Flights, Outcome};
use crate::config::{Config, ConfigError};
use crate::embedded::Embedded;
use crate::error::{GatewayError, UpstreamError};
use crate::freshness::{self, Storage};
use crate::key::CacheKey;
use crate::live::LiveSettings;
use crate::metrics::{Metrics, UpstreamOutcome};
use crate::normalize::{self, Decision, Rejection};
use crate::response::{self, CacheStatus};
use crate::upstream::{self, Upstream, UpstreamResponse};

/// What [`Gateway::route`] hands back: the response, how the cache answered (`None` for
/// errors before routing), and the key when the request was cacheable.
type Routed = (
    Response<response::Body>,
    Option<CacheStatus>,
    Option<CacheKey>,
);

/// The gateway's shared state. Cloning is cheap (one `Arc`).
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    /// What a SIGHUP may change: limits, lifetimes, access log (read per request).
    live: LiveSettings,
    cache: ResponseCache,
    upstream: Upstream,
    flights: Flights,
    metrics: Metrics,
    /// Deployment keys with stored answers, oldest first (bounded); a short std lock taken
    /// on the miss path only.
    deployments: std::sync::Mutex<std::collections::VecDeque<String>>,
    /// Permits for upstream requests in flight (`upstream.max_inflight`).
    inflight: Arc<Semaphore>,
    /// Bumped whenever what the upstream answers may have changed wholesale (embedded
    /// flags reloaded). A fetch that started under an older generation is not stored.
    generation: AtomicU64,
}

impl Gateway {
    /// Builds the gateway from a validated config.
    pub fn new(config: Config) -> Result<Gateway, ConfigError> {
        let upstream = if config.upstream.url == upstream::EMBEDDED {
            let e = &config.embedded;
            let engine =
                Embedded::load(Path::new(&e.flags_file), &e.deployment_keys).map_err(|err| {
                    ConfigError::Invalid {
                        key: "embedded.flags_file",
                        problem: err.to_string(),
                    }
                })?;
            Upstream::embedded(&config.upstream, engine)
        } else {
            Upstream::http(&config.upstream)?
        };
        Ok(Gateway {
            inner: Arc::new(Inner {
                cache: ResponseCache::new(&config.cache),
                inflight: Arc::new(Semaphore::new(config.upstream.max_inflight)),
                flights: Flights::default(),
                metrics: Metrics::new(),
                deployments: Default::default(),
                generation: AtomicU64::new(0),
                upstream,
                live: LiveSettings::new(&config),
                config,
            }),
        })
    }

    /// The configuration as loaded at start; [`Gateway::live`] has what SIGHUP changed.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The settings that change while running.
    pub fn live(&self) -> &LiveSettings {
        &self.inner.live
    }

    pub fn cache(&self) -> &ResponseCache {
        &self.inner.cache
    }

    /// The upstream (HTTP or embedded).
    pub fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }

    /// Drops every stored answer and keeps fetches already in flight from storing theirs:
    /// what the upstream answers has changed (embedded flags reloaded).
    pub fn invalidate_all(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.cache.invalidate_all();
        self.inner.metrics.purge(&PurgeScope::All);
    }

    /// Drops the stored answers in `scope` (and remembered 401s). Fetches already in flight
    /// are not stored when they land (one generation number for all: a purge may cost a
    /// concurrent fetch of another deployment its store, never a stale entry).
    pub async fn purge(&self, scope: &PurgeScope) {
        match scope {
            PurgeScope::All => self.invalidate_all(),
            PurgeScope::Deployment(key) => {
                self.inner.generation.fetch_add(1, Ordering::SeqCst);
                self.inner.cache.invalidate_deployment(key).await;
                self.inner.metrics.purge(scope);
            }
        }
        tracing::info!(scope = %scope, "cache purged");
    }

    /// Deployment keys whose answers were stored (bounded; oldest first out), for the
    /// flag-change poller.
    pub fn served_deployments(&self) -> Vec<String> {
        let seen = self
            .inner
            .deployments
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        seen.iter().cloned().collect()
    }

    /// The metrics this gateway records.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Upstream fetches in progress (coalesced misses count once).
    pub fn flights_in_progress(&self) -> usize {
        self.inner.flights.len()
    }

    /// Answers one request. Never fails: every error becomes a response.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<response::Body>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let family = normalize::family(request.uri().path());
        let (response, cache, key) = self.route(request).await;
        let elapsed = started.elapsed();
        let deployment = key.as_ref().map(CacheKey::deployment);
        let metrics = &self.inner.metrics;
        metrics.request(family, cache, response.status(), elapsed, deployment);
        if let (Some(key), Some(cache)) = (&key, cache) {
            metrics.lookup(key, cache);
        }
        let access_log = self.inner.live.access_log();
        if access_log.enabled() {
            access_log.record(&access_log::Entry {
                route: family,
                status: response.status(),
                cache,
                elapsed,
                deployment,
            });
        }
        response
    }

    async fn route<B>(&self, request: Request<B>) -> Routed
    where
        B: Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let live = &self.inner.live;
        if header_bytes(request.headers()) > live.max_header_bytes() {
            return (
                response::error(&GatewayError::HeadersTooLarge, None),
                None,
                None,
            );
        }
        let target_len = request
            .uri()
            .path_and_query()
            .map_or(0, |pq| pq.as_str().len());
        if target_len > live.max_query_bytes() {
            return (response::error(&GatewayError::UriTooLong, None), None, None);
        }
        let (parts, body) = request.into_parts();
        let body = match self.read_body(body).await {
            Ok(body) => body,
            Err(err) => {
                return (
                    response::error(&err, Some(CacheStatus::Bypass)),
                    Some(CacheStatus::Bypass),
                    None,
                );
            }
        };
        let decision = normalize::normalize(
            &parts.method,
            parts.uri.path(),
            parts.uri.query(),
            &parts.headers,
            &body,
            &live.limits(),
        );
        match decision {
            Some(Decision::Cache(key)) => {
                let head = parts.method == Method::HEAD;
                let (response, cache) = self.cached(key.clone(), head).await;
                (response, Some(cache), Some(key))
            }
            Some(Decision::Bypass(reason)) => {
                tracing::trace!(reason = reason.as_str(), "bypass");
                let response = self.passthrough(parts, body).await;
                (response, Some(CacheStatus::Bypass), None)
            }
            None => {
                let response = self.passthrough(parts, body).await;
                (response, Some(CacheStatus::Bypass), None)
            }
            Some(Decision::Reject(Rejection::ContextTooLong)) => {
                let response =
                    response::error(&GatewayError::ContextTooLong, Some(CacheStatus::Bypass));
                (response, Some(CacheStatus::Bypass), None)
            }
        }
    }

    /// Reads a request body within `server.max_body_bytes`; an empty body costs nothing.
    async fn read_body<B>(&self, body: B) -> Result<Bytes, GatewayError>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if body.is_end_stream() {
            return Ok(Bytes::new());
        }
        Limited::new(body, self.inner.live.max_body_bytes())
            .collect()
            .await
            .map(|collected| collected.to_bytes())
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    GatewayError::BodyTooLarge
                } else {
                    GatewayError::BodyRead
                }
            })
    }

    /// A cacheable request: answer from a fresh entry; from a stale one while it is
    /// refreshed in the background (within `cache.stale_while_revalidate_s`); else from the
    /// one coalesced fetch, falling back to a stale entry when the upstream fails (within
    /// `cache.stale_if_error_s`).
    async fn cached(&self, key: CacheKey, head: bool) -> (Response<response::Body>, CacheStatus) {
        let now = Instant::now();
        let cache = &self.inner.live.cache();
        let mut fallback = None;
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
        if let Some(denied) = self.inner.cache.unauthorized(key.deployment()).await {
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
            .join_or_start(&key, async move { this.fetch_and_store(fetch_key).await })
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
        self.inner
            .flights
            .start_if_idle(&key, async move { this.fetch_and_store(fetch_key).await });
    }

    /// The body of a flight: one upstream request for `key`. A storable 200 is stored
    /// before the flight ends, and a 401 remembered for its deployment key; anything else
    /// is returned to the waiters and not stored, so an error never replaces an entry.
    async fn fetch_and_store(&self, key: CacheKey) -> Outcome {
        // A request may have missed just before the previous flight for this key landed:
        // answer it from that flight's entry rather than asking the upstream again.
        if let Some(entry) = self.inner.cache.get(&key).await {
            if entry.stale_by(Instant::now()).is_none() {
                return Ok(Arc::new(entry.into_upstream_response()));
            }
        }
        let request = key
            .upstream_request(self.inner.upstream.base())
            .map_err(|_| GatewayError::Unforwardable)?;
        let generation = self.inner.generation.load(Ordering::SeqCst);
        let upstream = self.exchange(request).await.inspect_err(|e| {
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
                    let entry = CachedResponse {
                        status: StatusCode::OK,
                        content_type: upstream.headers.get(header::CONTENT_TYPE).cloned(),
                        body: upstream.body.clone(),
                        fetched_at,
                        fresh_for,
                        grace: Duration::from_secs(grace),
                    };
                    self.note_deployment(key.deployment());
                    self.inner.cache.insert(key, entry).await;
                }
            }
            StatusCode::UNAUTHORIZED if cache.negative_ttl_s > 0 => {
                let entry = CachedResponse {
                    status: StatusCode::UNAUTHORIZED,
                    content_type: upstream.headers.get(header::CONTENT_TYPE).cloned(),
                    body: upstream.body.clone(),
                    fetched_at,
                    fresh_for: Duration::from_secs(cache.negative_ttl_s),
                    grace: Duration::ZERO,
                };
                self.inner
                    .cache
                    .remember_unauthorized(key.deployment(), entry)
                    .await;
            }
            _ => {}
        }
        Ok(Arc::new(upstream))
    }

    /// Forwards a request as is (method, path, query, body, end-to-end headers) and
    /// relays the answer, storing nothing.
    async fn passthrough(
        &self,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Response<response::Body> {
        match self.forward(parts, body).await {
            Ok(upstream) => response::relayed(
                upstream.status,
                &upstream.headers,
                upstream.body,
                CacheStatus::Bypass,
            ),
            Err(err) => response::error(&err, Some(CacheStatus::Bypass)),
        }
    }

    async fn forward(
        &self,
        parts: http::request::Parts,
        body: Bytes,
    ) -> Result<UpstreamResponse, GatewayError> {
        let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut builder = Request::builder()
            .method(parts.method)
            .uri(format!("{}{pq}", self.inner.upstream.base()));
        let headers = builder.headers_mut().expect("fresh builder");
        response::copy_end_to_end(&parts.headers, headers);
        headers.remove(header::HOST);
        headers.remove(header::CONTENT_LENGTH);
        let request = builder
            .body(body)
            .map_err(|_| GatewayError::Unforwardable)?;
        self.exchange(request).await
    }

    /// One upstream request within `upstream.max_inflight`, timed and counted.
    async fn exchange(&self, request: Request<Bytes>) -> Result<UpstreamResponse, GatewayError> {
        let permit = self
            .inner
            .inflight
            .clone()
            .try_acquire_owned()
            .map_err(|_| GatewayError::Overloaded)?;
        let metrics = &self.inner.metrics;
        metrics.inflight(1);
        let started = Instant::now();
        let result = self.inner.upstream.send(request).await;
        let outcome = match &result {
            Ok(r) => UpstreamOutcome::Status(r.status.as_u16()),
            Err(UpstreamError::Connect(_)) => UpstreamOutcome::Connect,
            Err(UpstreamError::Timeout) => UpstreamOutcome::Timeout,
            Err(_) => UpstreamOutcome::Invalid,
        };
        metrics.upstream(outcome, started.elapsed());
        metrics.inflight(-1);
        drop(permit);
        Ok(result?)
    }
}

impl Gateway {
    /// Remembers a deployment whose answer was stored (miss path only).
    fn note_deployment(&self, deployment: &str) {
        let mut seen = self
            .inner
            .deployments
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if seen.iter().any(|d| d == deployment) {
            return;
        }
        if seen.len() >= MAX_TRACKED_DEPLOYMENTS {
            seen.pop_front();
        }
        seen.push_back(deployment.to_string());
    }
}

/// Deployments the flag-change poller follows at most.
const MAX_TRACKED_DEPLOYMENTS: usize = 1024;

/// What a purge drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeScope {
    All,
    /// One deployment key's entries.
    Deployment(String),
}

impl std::fmt::Display for PurgeScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PurgeScope::All => f.write_str("all"),
            PurgeScope::Deployment(key) => write!(f, "deployment {}", crate::mask::Masked(key)),
        }
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

/// The answer to a HEAD: the GET's headers, its `Content-Length`, no body.
fn without_body(response: Response<response::Body>) -> Response<response::Body> {
    let (mut parts, body) = response.into_parts();
    let len = body.size_hint().exact().unwrap_or(0);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    Response::from_parts(parts, response::Body::default())
}

/// Whether `body` is one JSON document starting with `opener` (`{` or `[`), validated
/// without building it.
fn is_json_document(body: &[u8], opener: u8) -> bool {
    let starts_right = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&opener);
    starts_right && serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok()
}

/// Total bytes of header names and values.
fn header_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum()
}

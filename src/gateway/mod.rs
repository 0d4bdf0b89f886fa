//! The request pipeline: normalize → cache → (coalesced) upstream → response.
//!
//! [`Gateway::handle`] is the whole data plane as one async function over any request
//! body, so tests and benches can drive it in-process; [`crate::server`] wires it to
//! sockets. Here: the shared state, routing and request bodies; [`lookup`] answers
//! cacheable requests (fresh, stale, coalesced fetch); [`passthrough`] forwards the rest;
//! [`exchange`] is one upstream request within `upstream.max_inflight` (and the upstream
//! budget's token, and a simulation of misses); [`purge`] drops
//! entries; [`encoded`] answers in the client's encoding; [`decode`] turns the upstream's
//! coded answers into identity; [`store`] keeps what a fill may keep; [`browser`] answers
//! `OPTIONS` on the cacheable routes and adds the CORS and `Cache-Control` headers every
//! answer there gets; [`simulated`] gives `[simulation] applies_to = "all"` its turn.

mod browser;
mod decode;
mod encoded;
mod exchange;
mod lookup;
mod passthrough;
mod purge;
mod simulated;
mod store;

pub use purge::PurgeScope;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, Version, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::access_log;
use crate::budget::Budget;
use crate::cache::ResponseCache;
use crate::coalesce::Flights;
use crate::compression::Compressor;
use crate::config::{Config, ConfigError};
use crate::cors::{Cors, Grant};
use crate::embedded::Embedded;
use crate::error::GatewayError;
use crate::key::{CacheKey, RouteFamily};
use crate::live::LiveSettings;
use crate::metrics::Metrics;
use crate::normalize::{self, Decision, Rejection};
use crate::response::{self, CacheStatus, ClientCacheControl};
use crate::shared_cache::{Origin, SharedCache};
use crate::simulation::Simulation;
use crate::spelling::SpellingMemo;
use crate::upstream::{self, Upstream};

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
    /// `/v1/vardata` spellings seen to hit, with their keys (skips normalization).
    spelling: SpellingMemo,
    upstream: Upstream,
    flights: Flights,
    metrics: Metrics,
    /// Compressed variants of stored answers (`[compression]`).
    compressor: Compressor,
    /// Deployment keys with stored answers, oldest first (bounded); a short std lock taken
    /// on the miss path only.
    deployments: std::sync::Mutex<std::collections::VecDeque<String>>,
    /// The upstream budget (`upstream.budget_rps`), when on.
    budget: Option<Budget>,
    /// Permits for upstream requests in flight (`upstream.max_inflight`).
    inflight: Arc<Semaphore>,
    /// The shared cache tier (`[shared_cache]`), when configured.
    shared: Option<SharedCache>,
    /// Bumped whenever what the upstream answers may have changed wholesale (embedded
    /// flags reloaded). A fetch that started under an older generation is not stored.
    generation: AtomicU64,
    /// `[cors]`: the CORS headers of the cacheable routes.
    cors: Cors,
    /// `cache.client_cache_control`.
    client_cache_control: ClientCacheControl,
    /// `[simulation]`, when it simulates anything: applied in [`Gateway::handle`]
    /// (`applies_to = "all"`) or in [`exchange`] (`"misses"`).
    simulation: Option<Simulation>,
}

impl Gateway {
    /// Builds the gateway from a validated config (what it reads itself, it checks: an
    /// invalid value is a [`ConfigError`], never a panic).
    pub fn new(config: Config) -> Result<Gateway, ConfigError> {
        let upstream = if config.upstream.url == upstream::EMBEDDED {
            let files: Vec<(PathBuf, Vec<String>)> = config
                .embedded
                .files()
                .into_iter()
                .map(|(file, keys)| (PathBuf::from(file), keys))
                .collect();
            let engine = Embedded::load_files(&files).map_err(|err| ConfigError::Invalid {
                key: config.embedded.setting_of(err.path()),
                problem: err.to_string(),
            })?;
            Upstream::embedded(&config.upstream, engine)
        } else {
            Upstream::http(&config.upstream)?.with_accept_gzip(config.compression.upstream_gzip)
        };
        let mut metrics = Metrics::new();
        if config.shared_cache.enabled() {
            metrics.register_shared_cache();
        }
        if config.simulation.enabled() {
            metrics.register_simulation();
        }
        // What answers misses, folded into the shared tier's names: instances share an
        // entry only when the same upstream, or the same embedded flags, answered it.
        let origin = match upstream.as_embedded() {
            Some(engine) => Origin::Embedded(engine.clone()),
            None => Origin::Url(upstream.base().to_string()),
        };
        let shared = SharedCache::new(&config, origin, metrics.shared_cache().clone()).map_err(
            |problem| ConfigError::Invalid {
                key: "shared_cache",
                problem,
            },
        )?;
        let flights = Flights::new(
            config.upstream.max_abandoned_fills,
            metrics.abandoned_fills().clone(),
        );
        let simulation = Simulation::new(&config.simulation, metrics.simulation().clone());
        Ok(Gateway {
            inner: Arc::new(Inner {
                simulation,
                cache: ResponseCache::new(&config.cache),
                spelling: SpellingMemo::new(
                    config.cache.spelling_memo_entries,
                    config.cache.spelling_memo_max_bytes,
                ),
                budget: Budget::new(&config.upstream, metrics.budget().clone()),
                inflight: Arc::new(Semaphore::new(config.upstream.max_inflight)),
                flights,
                compressor: Compressor::new(&config.compression, metrics.compression().clone()),
                metrics,
                deployments: Default::default(),
                generation: AtomicU64::new(0),
                cors: Cors::new(&config.cors)?,
                client_cache_control: ClientCacheControl::new(&config.cache.client_cache_control)?,
                shared,
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

    /// The shared cache tier, when `[shared_cache]` configures one.
    pub fn shared_cache(&self) -> Option<&SharedCache> {
        self.inner.shared.as_ref()
    }

    /// The upstream budget, when `upstream.budget_rps` turns it on.
    pub fn budget(&self) -> Option<&Budget> {
        self.inner.budget.as_ref()
    }

    /// The metrics this gateway records.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// `[simulation]`, when it simulates anything.
    pub fn simulation(&self) -> Option<&Simulation> {
        self.inner.simulation.as_ref()
    }

    /// Upstream fetches in progress (coalesced misses count once).
    pub fn flights_in_progress(&self) -> usize {
        self.inner.flights.len()
    }

    /// Answers one request as the public listeners do. Never fails: every error becomes a
    /// response. With `[simulation] applies_to = "all"` the simulation has its turn
    /// first (its delay, or a 429 or 503 instead of the answer, or a placeholder carrying
    /// [`crate::simulation::Unanswered`] for a request the listeners leave unanswered),
    /// except on a CORS preflight, which evalgate answers itself.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<response::Body>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        // Without a simulation, the hit path meets one branch here and nothing else.
        if self.inner.simulation.is_some()
            && let Some(response) = self
                .simulated(request.method(), request.uri(), request.headers())
                .await
        {
            return response;
        }
        self.handle_unsimulated(request).await
    }

    /// Answers one request like [`Gateway::handle`] but without `applies_to = "all"`'s
    /// turn (`/admin/try` shows evalgate's own answer). Never fails.
    pub async fn handle_unsimulated<B>(&self, request: Request<B>) -> Response<response::Body>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let started = Instant::now();
        let family = normalize::family(request.uri().path());
        // Decided from the request's `Origin` before the request is consumed, applied to
        // whatever answers it.
        let grant = family.map(|_| self.inner.cors.grant(request.headers()));
        let options = request.method() == Method::OPTIONS;
        let (mut response, cache, key) = self.route(request, family, grant.as_ref(), started).await;
        if let Some(grant) = grant {
            self.for_browsers(grant, cache, options, &mut response);
        }
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

    /// `now` is when the request arrived (one clock read serves the whole request);
    /// `family` and `grant` are the request's cacheable route and CORS grant, if any.
    async fn route<B>(
        &self,
        request: Request<B>,
        family: Option<RouteFamily>,
        grant: Option<&Grant>,
        now: Instant,
    ) -> Routed
    where
        B: Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        let live = &self.inner.live;
        // Nothing to forward: CONNECT would open a tunnel to wherever the client names
        // (the upstream saw it as `CONNECT /`), TRACE would echo the client's headers.
        if matches!(*request.method(), Method::CONNECT | Method::TRACE) {
            return (
                response::error(&GatewayError::MethodNotAllowed, None),
                None,
                None,
            );
        }
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
        // `OPTIONS` on a cacheable route is a browser's CORS preflight: answered here, never
        // forwarded (its body, if any, unread).
        if let (Some(route), Some(grant)) = (family, grant)
            && request.method() == Method::OPTIONS
        {
            return (self.options(route, grant, request.headers()), None, None);
        }
        let (parts, body) = request.into_parts();
        let body = match self.read_body(body, now).await {
            Ok(body) => body,
            Err(err) => {
                let mut response = response::error(&err, Some(CacheStatus::Bypass));
                if matches!(err, GatewayError::BodyTimeout) && parts.version < Version::HTTP_2 {
                    // hyper closes an HTTP/1.x connection after an answer that says so,
                    // without waiting for the rest of the body. (HTTP/2: the answer ends
                    // the stream; the connection's other streams go on.)
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                return (response, Some(CacheStatus::Bypass), None);
            }
        };
        let limits = live.limits();
        // A `/v1/vardata` GET or HEAD spelled like an earlier hit skips normalization.
        let memo = parts.uri.path() == normalize::V1_VARDATA
            && (parts.method == Method::GET || parts.method == Method::HEAD);
        let remembered = memo
            .then(|| {
                self.inner
                    .spelling
                    .get(parts.uri.query(), &parts.headers, &limits)
            })
            .flatten();
        let remembered_key = remembered.is_some();
        if remembered_key {
            self.inner.metrics.spelling_memo_hit();
        }
        let decision = match remembered {
            Some(key) => Some(Decision::Cache(key)),
            None => normalize::normalize(
                &parts.method,
                parts.uri.path(),
                parts.uri.query(),
                &parts.headers,
                &body,
                &limits,
            ),
        };
        match decision {
            Some(Decision::Cache(key)) => {
                let head = parts.method == Method::HEAD;
                let accepted = self.inner.compressor.accepted(&parts.headers);
                let (response, cache) = self.cached(key.clone(), head, accepted, now).await;
                // Remembered once it hits: a one-off miss does not churn the memo.
                if memo && !remembered_key && cache == CacheStatus::Hit {
                    self.inner
                        .spelling
                        .remember(parts.uri.query(), &parts.headers, &limits, &key);
                }
                (response, Some(cache), Some(key))
            }
            // Boxed: the passthrough's upstream exchange would otherwise make every
            // request's future (moved into place per request) several KiB larger.
            Some(Decision::Bypass(reason)) => {
                tracing::trace!(reason = reason.as_str(), "bypass");
                let response = Box::pin(self.passthrough(parts, body)).await;
                (response, Some(CacheStatus::Bypass), None)
            }
            None => {
                let response = Box::pin(self.passthrough(parts, body)).await;
                (response, Some(CacheStatus::Bypass), None)
            }
            Some(Decision::Reject(Rejection::ContextTooLong)) => {
                let response =
                    response::error(&GatewayError::ContextTooLong, Some(CacheStatus::Bypass));
                (response, Some(CacheStatus::Bypass), None)
            }
        }
    }

    /// Reads a request body within `server.max_body_bytes`, all of it by
    /// `server.body_read_timeout_ms` after `head_at` (when the head was handed over): a
    /// client that sends its body slowly, or never, holds its connection no longer. An
    /// empty body costs nothing (no timer).
    async fn read_body<B>(&self, body: B, head_at: Instant) -> Result<Bytes, GatewayError>
    where
        B: Body<Data = Bytes> + Send,
        B::Error: std::error::Error + Send + Sync + 'static,
    {
        if body.is_end_stream() {
            return Ok(Bytes::new());
        }
        let deadline = head_at + self.inner.config.server.body_read_timeout();
        let collect = Limited::new(body, self.inner.live.max_body_bytes()).collect();
        tokio::time::timeout_at(deadline, collect)
            .await
            .map_err(|_| GatewayError::BodyTimeout)?
            .map(|collected| collected.to_bytes())
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    GatewayError::BodyTooLarge
                } else {
                    GatewayError::BodyRead
                }
            })
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

/// Total bytes of header names and values.
fn header_bytes(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(n, v)| n.as_str().len() + v.len())
        .sum()
}

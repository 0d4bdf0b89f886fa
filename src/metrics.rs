//! Metrics the gateway records on its request path, kept in an explicit
//! `prometheus-client` [`Registry`] owned by [`Metrics`] (no global), and exposed by the
//! admin listener ([`crate::admin`]) as Prometheus text and `/admin/stats`.
//!
//! Every method here is called on the hit path or the miss path and must stay cheap:
//! every label set is created up front and its counter handle kept in an array, so
//! recording is an index and a relaxed atomic add; histograms are lock-free
//! ([`histogram`]); the per-deployment and top-key table ([`traffic`]) is a short lock on
//! one of 16 shards. Labels are bounded: route families, cache statuses, status classes
//! and outcomes, never raw paths, users or keys; the one per-deployment label (the
//! upstream budget's in `metrics/budget.rs`, recorded off the hit path) is a masked key, at most 32
//! of them, then `other`.

mod abandoned;
mod budget;
mod compression;
mod cors;
mod health;
pub mod histogram;
mod labels;
pub mod memory;
mod segments;
mod shared;
pub mod simulation;
pub mod tls;
pub mod traffic;

use std::sync::atomic::Ordering;
use std::time::Duration;

use http::StatusCode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::cache::CacheCounts;
use crate::gateway::PurgeScope;
use crate::key::{CacheKey, RouteFamily};
use crate::response::CacheStatus;
pub use abandoned::AbandonedFills;
pub use budget::{BUDGET_OUTCOMES, BudgetMetrics, BudgetOutcome};
pub use compression::{CompressionMetrics, Skipped};
pub use cors::{CorsMetrics, Preflight};
use health::LastExchanges;
pub use health::UpstreamHealth;
use histogram::{AtomicHistogram, HIT_BOUNDS, Percentiles, UPSTREAM_BOUNDS};
pub use labels::REMOVAL_CAUSES;
use labels::{
    CACHE, CLASSES, DROP_REASONS, Labels, OUTCOMES, POLL_RESULTS, PURGE_SCOPES, ROUTES,
    cache_index, family, one_label, route_index,
};
use memory::MemoryMetrics;
use segments::SegmentMetrics;
pub use shared::{OPS as SHARED_CACHE_OPS, SharedCacheMetrics};
use simulation::SimulationMetrics;
use tls::TlsMetrics;
use traffic::Traffic;

/// How one upstream exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamOutcome {
    /// An HTTP answer with this status class (2xx … 5xx).
    Status(u16),
    /// Unreachable (refused, connect timeout, TLS).
    Connect,
    /// No answer within `upstream.timeout_ms`.
    Timeout,
    /// Garbage, too large, or a 200 that is not the expected JSON.
    Invalid,
}

/// Request totals by cache status, for `/admin/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RequestTotals {
    pub requests: u64,
    pub hits: u64,
    pub stale: u64,
    pub misses: u64,
    pub bypasses: u64,
}

/// The gateway's metrics. Created once, shared by reference through [`crate::Gateway`].
pub struct Metrics {
    registry: Registry,
    /// `[route][cache]`.
    requests: [[Counter; CACHE.len()]; ROUTES.len()],
    responses: [Counter; CLASSES.len()],
    upstream: [Counter; OUTCOMES.len()],
    upstream_invalid: Counter,
    upstream_latency: AtomicHistogram,
    hit_latency: AtomicHistogram,
    coalesced: Counter,
    spelling_memo_hits: Counter,
    headers_dropped: [Counter; DROP_REASONS.len()],
    cors: CorsMetrics,
    budget: BudgetMetrics,
    inflight: Gauge,
    abandoned: AbandonedFills,
    tls: TlsMetrics,
    shared_cache: SharedCacheMetrics,
    compression: CompressionMetrics,
    simulation: SimulationMetrics,
    purges: [Counter; PURGE_SCOPES.len()],
    polls: [Counter; POLL_RESULTS.len()],
    /// Set from the cache at each scrape ([`Metrics::observe_cache`]).
    cache_entries: Gauge,
    cache_bytes: Gauge,
    cache_capacity: Gauge,
    removals: [Counter; REMOVAL_CAUSES.len()],
    segments: SegmentMetrics,
    /// Set from the process at each scrape ([`Metrics::observe_memory`]).
    memory: MemoryMetrics,
    traffic: Traffic,
    last_exchanges: LastExchanges,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("evalgate");
        let r = &mut registry;
        let grid: [[Labels; CACHE.len()]; ROUTES.len()] =
            ROUTES.map(|route| CACHE.map(|cache| vec![("route", route), ("cache", cache)]));
        let family_grid = Family::<Labels, Counter>::default();
        r.register(
            "requests",
            "Client requests answered, by route family and cache status",
            family_grid.clone(),
        );
        let requests = grid.map(|row| row.map(|labels| family_grid.get_or_create_owned(&labels)));
        let responses = family(
            r,
            "responses",
            "Client responses by status class",
            one_label("class", CLASSES),
        );
        let upstream = family(
            r,
            "upstream_requests",
            "Upstream exchanges by outcome (status class, connect, timeout, invalid)",
            one_label("outcome", OUTCOMES),
        );
        let upstream_invalid = Counter::default();
        r.register(
            "upstream_invalid_responses",
            "Upstream 200s refused as not the expected JSON (also counted by status)",
            upstream_invalid.clone(),
        );
        let upstream_latency = AtomicHistogram::new(UPSTREAM_BOUNDS);
        r.register(
            "upstream_duration_seconds",
            "Upstream exchange latency",
            upstream_latency.clone(),
        );
        let hit_latency = AtomicHistogram::new(HIT_BOUNDS);
        r.register(
            "hit_duration_seconds",
            "Latency of requests answered from a fresh cache entry (in-process, no socket)",
            hit_latency.clone(),
        );
        let coalesced = Counter::default();
        r.register(
            "coalesced",
            "Misses that joined an upstream fetch already in flight",
            coalesced.clone(),
        );
        let spelling_memo_hits = Counter::default();
        r.register(
            "spelling_memo_hits",
            "/v1/vardata requests whose key came from the spelling memo (not normalized again)",
            spelling_memo_hits.clone(),
        );
        let headers_dropped = family(
            r,
            "request_headers_dropped",
            "Request header fields a passthrough did not forward, by reason",
            one_label("reason", DROP_REASONS),
        );
        let cors = CorsMetrics::register(r);
        let budget = BudgetMetrics::register(r);
        let inflight = Gauge::default();
        r.register(
            "upstream_inflight",
            "Upstream requests in flight",
            inflight.clone(),
        );
        let abandoned = AbandonedFills::register(r);
        let compression = CompressionMetrics::register(r);
        let tls = TlsMetrics::register(r);
        let memory = MemoryMetrics::register(r);
        let segments = SegmentMetrics::register(r);
        let purges = family(
            r,
            "purges",
            "Cache purges by scope",
            one_label("scope", PURGE_SCOPES),
        );
        let polls = family(
            r,
            "invalidation_polls",
            "Flag-change polls by result",
            one_label("result", POLL_RESULTS),
        );
        let gauge = |r: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            r.register(name, help, g.clone());
            g
        };
        let cache_entries = gauge(r, "cache_entries", "Entries in the response cache");
        let cache_bytes = gauge(
            r,
            "cache_weighted_bytes",
            "Weighted bytes in the response cache",
        );
        let cache_capacity = gauge(
            r,
            "cache_capacity_bytes",
            "The cache's byte bound (cache.max_bytes)",
        );
        let removals = family(
            r,
            "cache_evictions",
            "Entries removed from the cache, by cause (size = evicted to make room)",
            one_label("cause", REMOVAL_CAUSES),
        );
        Metrics {
            registry,
            requests,
            responses,
            upstream,
            upstream_invalid,
            upstream_latency,
            hit_latency,
            coalesced,
            spelling_memo_hits,
            headers_dropped,
            cors,
            budget,
            inflight,
            abandoned,
            tls,
            memory,
            segments,
            shared_cache: SharedCacheMetrics::default(),
            compression,
            simulation: SimulationMetrics::default(),
            purges,
            polls,
            cache_entries,
            cache_bytes,
            cache_capacity,
            removals,
            traffic: Traffic::default(),
            last_exchanges: LastExchanges::new(),
        }
    }

    /// One client request answered. `route` is `None` for paths that are not cached.
    pub fn request(
        &self,
        route: Option<RouteFamily>,
        cache: Option<CacheStatus>,
        status: StatusCode,
        elapsed: Duration,
        deployment: Option<&str>,
    ) {
        // Per-deployment counts are kept by `lookup`, which has the whole key.
        let _ = deployment;
        self.requests[route_index(route)][cache_index(cache)].inc();
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.responses[class].inc();
        if cache == Some(CacheStatus::Hit) {
            self.hit_latency.observe(elapsed);
        }
    }

    /// One cache lookup of `key` (hit, stale or miss), for the per-deployment hit ratios
    /// and the top keys of `/admin/stats`.
    pub fn lookup(&self, key: &CacheKey, cache: CacheStatus) {
        self.traffic.record(key, cache);
    }

    /// One upstream exchange finished (cacheable fetch or passthrough).
    pub fn upstream(&self, outcome: UpstreamOutcome, elapsed: Duration) {
        let index = match outcome {
            UpstreamOutcome::Status(status) => usize::from(status / 100).clamp(1, 5) - 1,
            UpstreamOutcome::Connect => 5,
            UpstreamOutcome::Timeout => 6,
            UpstreamOutcome::Invalid => 7,
        };
        self.upstream[index].inc();
        self.upstream_latency.observe(elapsed);
        self.last_exchanges
            .record(matches!(outcome, UpstreamOutcome::Status(_)));
    }

    /// An upstream 200 was refused as not the expected JSON (counted besides its status).
    pub fn upstream_invalid(&self) {
        self.upstream_invalid.inc();
    }

    /// A purge ran (admin endpoint, flag-change poller, or flags reload).
    pub fn purge(&self, scope: &PurgeScope) {
        let index = match scope {
            PurgeScope::All => 0,
            PurgeScope::Deployment(_) => 1,
        };
        self.purges[index].inc();
    }

    /// One flag-change poll of one deployment finished.
    pub fn invalidation_poll(&self, ok: bool) {
        self.polls[usize::from(!ok)].inc();
    }

    /// A miss joined a fetch already in flight instead of starting one.
    pub fn coalesced(&self) {
        self.coalesced.inc();
    }

    /// A request's key came from the spelling memo.
    pub fn spelling_memo_hit(&self) {
        self.spelling_memo_hits.inc();
    }

    /// `n` request header fields with `_` in their name were not forwarded.
    pub fn underscored_headers_dropped(&self, n: u64) {
        self.headers_dropped[0].inc_by(n);
    }

    /// Upstream requests now in flight changed by `delta`.
    pub fn inflight(&self, delta: i64) {
        self.inflight.inc_by(delta);
    }

    /// Upstream requests in flight now.
    pub fn inflight_now(&self) -> i64 {
        self.inflight.get()
    }

    /// The CORS metrics, for [`crate::gateway`] to record preflights into.
    pub fn cors(&self) -> &CorsMetrics {
        &self.cors
    }

    /// The upstream budget's metrics, for [`crate::budget::Budget`] to record into.
    pub fn budget(&self) -> &BudgetMetrics {
        &self.budget
    }

    /// The HTTPS listener's metrics, for [`crate::server::tls`] to record into.
    pub fn tls(&self) -> &TlsMetrics {
        &self.tls
    }

    /// The abandoned-fill metrics, for [`crate::coalesce::Flights`] to record into.
    pub fn abandoned_fills(&self) -> &AbandonedFills {
        &self.abandoned
    }

    /// The shared cache tier's metrics (unregistered unless
    /// [`Metrics::register_shared_cache`] ran: a single box exposes none of them).
    pub fn shared_cache(&self) -> &SharedCacheMetrics {
        &self.shared_cache
    }

    /// Compressions and upstream decodes.
    pub fn compression(&self) -> &CompressionMetrics {
        &self.compression
    }

    /// What `[simulation]` did (unregistered unless [`Metrics::register_simulation`]
    /// ran: without a simulation none of them is exposed).
    pub fn simulation(&self) -> &SimulationMetrics {
        &self.simulation
    }

    /// Registers the simulation's metrics (when `[simulation]` simulates anything).
    pub fn register_simulation(&mut self) {
        self.simulation = SimulationMetrics::register(&mut self.registry);
    }

    /// Registers the shared cache tier's metrics (when `[shared_cache]` is configured).
    pub fn register_shared_cache(&mut self) {
        self.shared_cache = SharedCacheMetrics::register(&mut self.registry);
    }

    /// Copies the cache's current size and removal totals into their metrics; called
    /// before each scrape.
    pub fn observe_cache(&self, counts: &CacheCounts) {
        let gauge = |g: &Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        gauge(&self.cache_entries, counts.entries);
        gauge(&self.cache_bytes, counts.weighted_bytes);
        gauge(&self.cache_capacity, counts.capacity_bytes);
        for (counter, total) in self.removals.iter().zip(counts.removed) {
            counter.inner().store(total, Ordering::Relaxed);
        }
        self.segments.observe(counts);
    }

    /// Copies the process's memory counts into their metrics; called before each scrape.
    pub fn observe_memory(&self, stats: &crate::memory::MemoryStats) {
        self.memory.observe(stats);
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Requests so far, summed over routes.
    pub fn totals(&self) -> RequestTotals {
        let by_cache = |c: usize| -> u64 { self.requests.iter().map(|row| row[c].get()).sum() };
        let hits = by_cache(0);
        let stale = by_cache(1);
        let misses = by_cache(2);
        let bypasses = by_cache(3);
        RequestTotals {
            requests: hits + stale + misses + bypasses + by_cache(4),
            hits,
            stale,
            misses,
            bypasses,
        }
    }

    /// Upstream exchange latency percentiles.
    pub fn upstream_latency(&self) -> Percentiles {
        self.upstream_latency.percentiles()
    }

    /// Hit-path latency percentiles.
    pub fn hit_latency(&self) -> Percentiles {
        self.hit_latency.percentiles()
    }

    /// Per-deployment counts and top keys.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// What the upstream's recent exchanges say, over the last `window`.
    pub fn upstream_health(&self, window: Duration) -> UpstreamHealth {
        self.last_exchanges.health(window)
    }

    /// Time since these metrics were created (the gateway's uptime).
    pub fn uptime(&self) -> Duration {
        self.last_exchanges.since_start()
    }
}

#[cfg(test)]
mod tests;

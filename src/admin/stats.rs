//! `GET /metrics` (Prometheus text) and `GET /admin/stats` (JSON for people and the
//! status page): both read the gateway's [`crate::metrics::Metrics`] and its cache.

use http::{HeaderValue, Response, StatusCode, header};
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

use crate::cache::CacheCounts;
use crate::gateway::Gateway;
use crate::metrics::simulation::KINDS;
use crate::metrics::traffic::ratio;
use crate::metrics::{BUDGET_OUTCOMES, BudgetOutcome, REMOVAL_CAUSES, RequestTotals};
use crate::response::Body;

/// Keys listed under `top_keys`.
const TOP_KEYS: usize = 10;

/// The cache's counts after applying its pending inserts and removals (moka defers them),
/// so a scrape right after traffic sees it.
async fn cache_counts(gateway: &Gateway) -> CacheCounts {
    gateway.cache().run_pending_tasks().await;
    gateway.cache().counts()
}

/// `GET /metrics`.
pub async fn metrics(gateway: &Gateway) -> Response<Body> {
    let metrics = gateway.metrics();
    metrics.observe_cache(&cache_counts(gateway).await);
    metrics.observe_memory(&crate::memory::stats());
    let mut response = Response::new(Body::from(metrics.encode()));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// `GET /admin/stats`.
pub async fn stats(gateway: &Gateway) -> Response<Body> {
    let metrics = gateway.metrics();
    let totals = metrics.totals();
    let cache = cache_counts(gateway).await;
    let removed: serde_json::Map<String, serde_json::Value> = REMOVAL_CAUSES
        .iter()
        .zip(cache.removed)
        .map(|(cause, n)| ((*cause).to_string(), n.into()))
        .collect();
    let served_from_cache = totals.hits + totals.stale;
    let body = serde_json::json!({
        "uptime_s": metrics.uptime().as_secs_f64(),
        "requests": totals,
        // (hits + stale) / (hits + stale + misses): bypasses are not lookups.
        "hit_ratio": ratio(served_from_cache, served_from_cache + totals.misses),
        "cache": {
            "entries": cache.entries,
            "weighted_bytes": cache.weighted_bytes,
            "capacity_bytes": cache.capacity_bytes,
            "fill_ratio": ratio(cache.weighted_bytes, cache.capacity_bytes),
            "removed": removed,
            // Flag configurations have a segment of their own (cache.flags_percent).
            "segments": {"answers": cache.answers, "flags": cache.flags},
        },
        // The process's resident set and, on jemalloc, what the allocator counts: to set
        // the cache's weighted bytes beside.
        "memory": crate::memory::stats(),
        "upstream": {
            "inflight": metrics.inflight_now(),
            "latency_ms": metrics.upstream_latency(),
            "tracking": gateway.config().upstream.tracking.as_str(),
            "budget": budget(gateway),
        },
        "hit_latency_ms": metrics.hit_latency(),
        "shared_cache": shared_cache(gateway, &totals),
        "simulation": simulation(gateway),
        // The embedded engine's flags files: each with its flag count and (masked)
        // deployments; `null` in front of an HTTP upstream.
        "embedded": gateway.upstream().as_embedded().map(|e| e.status()),
        "deployments": metrics.traffic().deployments(),
        "top_keys": metrics.traffic().top_keys(TOP_KEYS),
    });
    super::json(StatusCode::OK, &body)
}

/// `[simulation]`'s part of `/admin/stats`: its profile and what it did so far (`null`
/// when it simulates nothing), apart from evalgate's own counts.
fn simulation(gateway: &Gateway) -> serde_json::Value {
    let Some(simulation) = gateway.simulation() else {
        return serde_json::Value::Null;
    };
    let metrics = gateway.metrics().simulation();
    let counts: serde_json::Map<String, serde_json::Value> = KINDS
        .iter()
        .zip(metrics.counts())
        .map(|(kind, n)| ((*kind).to_string(), n.into()))
        .collect();
    serde_json::json!({
        "profile": gateway.config().simulation,
        "draws": simulation.draws(),
        "simulated": counts,
        "delay_ms": metrics.delay(),
    })
}

/// The shared tier's part of `/admin/stats`: its state, and L1 and L2 hit ratios side by
/// side (`null` when `[shared_cache]` is off). L1: lookups answered from this instance's
/// memory; L2: L1 misses that asked Redis and got an answer there (directly, or after
/// waiting for another instance's fill).
fn shared_cache(gateway: &Gateway, totals: &RequestTotals) -> serde_json::Value {
    let Some(shared) = gateway.shared_cache() else {
        return serde_json::Value::Null;
    };
    let m = shared.metrics();
    let n = |op: &str, result: &str| m.count(op, result);
    let l2_hits = n("read", "hit") + n("read", "stale") + n("wait", "waited");
    let l2_lookups = ["hit", "stale", "miss", "locked", "error", "timeout"]
        .iter()
        .map(|r| n("read", r))
        .sum::<u64>();
    let lookups = totals.hits + totals.stale + totals.misses;
    let l1_hits = (totals.hits + totals.stale).saturating_sub(l2_hits);
    let [sent, received] = m.fanout();
    let by = |op: &str| -> serde_json::Map<String, serde_json::Value> {
        crate::metrics::SHARED_CACHE_OPS
            .iter()
            .find(|(o, _)| *o == op)
            .map(|(_, results)| {
                results
                    .iter()
                    .map(|r| ((*r).to_string(), n(op, r).into()))
                    .collect()
            })
            .unwrap_or_default()
    };
    serde_json::json!({
        "status": shared.status(),
        "l1": { "lookups": lookups, "hits": l1_hits, "hit_ratio": ratio(l1_hits, lookups) },
        "l2": { "lookups": l2_lookups, "hits": l2_hits, "hit_ratio": ratio(l2_hits, l2_lookups) },
        "reads": by("read"),
        "waits": by("wait"),
        "writes": by("write"),
        "purges": by("purge"),
        "resyncs": by("resync"),
        "leases": by("lease"),
        "purge_messages": { "sent": sent, "received": received },
        "read_latency_ms": m.percentiles("read"),
    })
}

/// The upstream budget's part of `/admin/stats`: its settings, the deployments it tracks
/// and its outcomes so far (`null` when `upstream.budget_rps` is 0).
fn budget(gateway: &Gateway) -> serde_json::Value {
    let Some(budget) = gateway.budget() else {
        return serde_json::Value::Null;
    };
    let (rps, burst, mode) = budget.settings();
    let m = gateway.metrics().budget();
    let outcomes: serde_json::Map<String, serde_json::Value> = BUDGET_OUTCOMES
        .iter()
        .zip(BudgetOutcome::ALL)
        .map(|(name, outcome)| ((*name).to_string(), m.count(outcome).into()))
        .collect();
    serde_json::json!({
        "rps": rps,
        "burst": burst,
        "mode": mode.as_str(),
        "deployments": budget.tracked(),
        "outcomes": outcomes,
    })
}

//! Metrics the gateway records on its request path. (Interface first; the Prometheus
//! exposition lives in the admin listener.)
//!
//! Every method here is called on the hit path or the miss path and must stay cheap:
//! atomics and pre-registered label sets only, no allocation, no locks held across awaits.
//! Labels are bounded: route families and status classes, never raw paths, users or keys.

use std::time::Duration;

use http::StatusCode;

use crate::key::RouteFamily;
use crate::response::CacheStatus;

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

/// The gateway's metrics. Created once, shared by reference through [`crate::Gateway`].
#[derive(Default)]
pub struct Metrics {}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
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
        let _ = (route, cache, status, elapsed, deployment);
    }

    /// One upstream exchange finished (cacheable fetch or passthrough).
    pub fn upstream(&self, outcome: UpstreamOutcome, elapsed: Duration) {
        let _ = (outcome, elapsed);
    }

    /// An upstream 200 was refused as not the expected JSON (counted besides its status).
    pub fn upstream_invalid(&self) {}

    /// A purge ran (admin endpoint, flag-change poller, or flags reload).
    pub fn purge(&self, scope: &crate::gateway::PurgeScope) {
        let _ = scope;
    }

    /// One flag-change poll of one deployment finished.
    pub fn invalidation_poll(&self, ok: bool) {
        let _ = ok;
    }

    /// A miss joined a fetch already in flight instead of starting one.
    pub fn coalesced(&self) {}

    /// Upstream requests now in flight changed by `delta`.
    pub fn inflight(&self, delta: i64) {
        let _ = delta;
    }
}

//! CORS: `OPTIONS` on the cacheable routes (preflights), answered by evalgate, by result;
//! recorded by [`crate::gateway`] once per preflight.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use super::labels::{family, one_label};

/// `result` label values of `OPTIONS` on the cacheable routes, in [`Preflight`] order.
const PREFLIGHT_RESULTS: [&str; 3] = ["allowed", "refused", "no_origin"];

/// How an `OPTIONS` on a cacheable route (a CORS preflight) was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preflight {
    /// With CORS headers (`*`, or an allowed `Origin`).
    Allowed = 0,
    /// Without: the `Origin` is not allowed (the browser blocks the request).
    Refused = 1,
    /// No `Origin`: not a browser's preflight.
    NoOrigin = 2,
}

/// Handles on the CORS metrics; cheap to clone. The default is unregistered.
#[derive(Clone, Default)]
pub struct CorsMetrics {
    preflights: [Counter; PREFLIGHT_RESULTS.len()],
}

impl CorsMetrics {
    pub(super) fn register(registry: &mut Registry) -> CorsMetrics {
        let preflights = family(
            registry,
            "cors_preflights",
            "OPTIONS on the cacheable routes, answered by evalgate, by result",
            one_label("result", PREFLIGHT_RESULTS),
        );
        CorsMetrics { preflights }
    }

    /// An `OPTIONS` on a cacheable route was answered.
    pub fn preflight(&self, result: Preflight) {
        self.preflights[result as usize].inc();
    }
}

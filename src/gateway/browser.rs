//! The cacheable routes as browsers need them: their `OPTIONS` answered here (never
//! forwarded), and on every answer, whatever produced it (hit, stale, miss, relayed,
//! passthrough, evalgate's own error), the CORS headers of the request's [`Grant`] and,
//! but on the preflight, the clients' `Cache-Control`. Added per response from the
//! request's `Origin`, never stored with an entry, so a cached answer never carries one
//! origin's headers to another.

use http::{Response, header};

use super::Gateway;
use crate::cors::{self, Grant};
use crate::key::RouteFamily;
use crate::metrics::Preflight;
use crate::response::{self, CacheStatus};

impl Gateway {
    /// The answer to an `OPTIONS` on `route` (a CORS preflight when it has an `Origin`).
    pub(super) fn options(
        &self,
        route: RouteFamily,
        grant: &Grant,
        headers: &http::HeaderMap,
    ) -> Response<response::Body> {
        let preflight = match (grant, headers.contains_key(header::ORIGIN)) {
            (_, false) => Preflight::NoOrigin,
            (Grant::Refused, true) => Preflight::Refused,
            (_, true) => Preflight::Allowed,
        };
        self.inner.metrics.cors().preflight(preflight);
        self.inner.cors.preflight(route, grant)
    }

    /// Adds the browser-facing headers to an answer on a cacheable route. `cache` says
    /// where it came from: only a MISS or BYPASS may carry the upstream's headers, whose
    /// `Access-Control-*` (and `Vary: Origin`) and caching headers are not relayed as
    /// they are. `options`: the request was an `OPTIONS`, so its success is the preflight,
    /// which gets no `Cache-Control`: no HTTP cache stores an `OPTIONS` answer (RFC 9110
    /// §9.3.7), and browsers keep a preflight for `Access-Control-Max-Age` alone.
    pub(super) fn for_browsers(
        &self,
        grant: Grant,
        cache: Option<CacheStatus>,
        options: bool,
        response: &mut Response<response::Body>,
    ) {
        let status = response.status();
        let headers = response.headers_mut();
        let relayed = matches!(cache, Some(CacheStatus::Miss | CacheStatus::Bypass));
        if relayed {
            cors::strip_upstream(headers);
        }
        self.inner.cors.apply(grant, headers);
        if !(options && status.is_success()) {
            self.inner
                .client_cache_control
                .apply(headers, status, relayed);
        }
    }
}

//! `[simulation] applies_to = "all"`: its turn at the top of [`Gateway::handle`], before
//! evalgate looks at the request (`"misses"` has its turn in [`super::exchange`]).

use http::{HeaderMap, Method, Response, Uri};

use super::Gateway;
use crate::config::AppliesTo;
use crate::normalize;
use crate::response;
use crate::simulation::ClientTurn;

impl Gateway {
    /// The simulation's turn for one client request: `None` to answer it as usual (after
    /// the drawn delay), else what replaces the answer: a simulated 429 or 503, or the
    /// placeholder of a request left unanswered. A CORS preflight on a cacheable route is
    /// not simulated: evalgate answers it itself, and a simulated failure there would
    /// reach a page as a CORS error, not as the 429 its SDK retries.
    pub(super) async fn simulated(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Option<Response<response::Body>> {
        let simulation = self.inner.simulation.as_ref()?;
        if simulation.applies_to() != AppliesTo::All {
            return None;
        }
        let family = normalize::family(uri.path());
        if family.is_some() && method == Method::OPTIONS {
            return None;
        }
        let ClientTurn::Instead(mut response) = simulation.client().await else {
            return None;
        };
        // The route's CORS headers (and `no-store`), so that a page reads the 429 or 503
        // as it would read one from the service.
        if family.is_some() {
            let grant = self.inner.cors.grant(headers);
            self.for_browsers(grant, None, false, &mut response);
        }
        Some(response)
    }
}

//! One upstream exchange within `upstream.max_inflight`, timed and counted, for fills and
//! passthroughs alike; with `[simulation] applies_to = "misses"`, the simulation's turn
//! comes here, once per exchange, for the embedded engine and an HTTP upstream alike.

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::Gateway;
use crate::budget::Purpose;
use crate::config::AppliesTo;
use crate::error::{GatewayError, UpstreamError};
use crate::metrics::{Metrics, UpstreamOutcome};
use crate::simulation::Exchange;
use crate::upstream::UpstreamResponse;

impl Gateway {
    /// One upstream exchange (`send`, not started until then) within
    /// `upstream.max_inflight`, timed and counted.
    ///
    /// With a simulation of misses, its delay comes first (holding the in-flight permit,
    /// as a slow upstream would) and counts against `upstream.timeout_ms`; a simulated 429
    /// or 503 is returned in the upstream's place (never sent, then relayed and not stored
    /// like a real one), a simulated timeout or reset fails as the real one would. What is
    /// simulated is counted in the simulation's metrics only: the upstream metrics (and
    /// readiness) see real exchanges alone, timed without the simulated delay.
    ///
    /// `charge`: the deployment key and purpose one `upstream.budget_*` token is taken for,
    /// only once the request is really to be sent (past `upstream.max_inflight` and the
    /// simulation's turn): a request refused here or answered by the simulation costs none.
    pub(super) async fn exchange(
        &self,
        charge: (&str, Purpose),
        send: impl Future<Output = Result<UpstreamResponse, UpstreamError>>,
    ) -> Result<UpstreamResponse, GatewayError> {
        let permit = self
            .inner
            .inflight
            .clone()
            .try_acquire_owned()
            .map_err(|_| GatewayError::Overloaded)?;
        let metrics = &self.inner.metrics;
        // Counted out when dropped, with the permit: a cancelled fill (or a client that
        // hung up on a passthrough) leaves nothing counted in flight.
        let _inflight = Inflight::count(metrics, permit);
        let mut within = None;
        if let Some(simulation) = &self.inner.simulation
            && simulation.applies_to() == AppliesTo::Misses
        {
            // Boxed: the exchange's future stays the size it is without a simulation.
            let turn = Box::pin(simulation.upstream(self.inner.upstream.timeout()));
            match turn.await {
                Exchange::Instead(result) => return Ok(result?),
                Exchange::Send { within: left } => within = left,
            }
        }
        if let Some(budget) = &self.inner.budget {
            let (deployment, purpose) = charge;
            budget.take(deployment, purpose)?;
        }
        let started = Instant::now();
        let result = match within {
            None => send.await,
            Some(left) => tokio::time::timeout(left, send)
                .await
                .unwrap_or(Err(UpstreamError::Timeout)),
        };
        let outcome = match &result {
            Ok(r) => UpstreamOutcome::Status(r.status.as_u16()),
            Err(UpstreamError::Connect(_)) => UpstreamOutcome::Connect,
            Err(UpstreamError::Timeout) => UpstreamOutcome::Timeout,
            Err(_) => UpstreamOutcome::Invalid,
        };
        metrics.upstream(outcome, started.elapsed());
        Ok(result?)
    }
}

/// One upstream exchange in flight: its `upstream.max_inflight` permit and its count in
/// the in-flight gauge, both given back when it is dropped, however the exchange ends.
struct Inflight<'a> {
    metrics: &'a Metrics,
    _permit: OwnedSemaphorePermit,
}

impl Inflight<'_> {
    fn count(metrics: &Metrics, permit: OwnedSemaphorePermit) -> Inflight<'_> {
        metrics.inflight(1);
        Inflight {
            metrics,
            _permit: permit,
        }
    }
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        self.metrics.inflight(-1);
    }
}

//! One upstream exchange within `upstream.max_inflight`, timed and counted, for fills and
//! passthroughs alike.

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::Gateway;
use crate::error::{GatewayError, UpstreamError};
use crate::metrics::{Metrics, UpstreamOutcome};
use crate::upstream::UpstreamResponse;

impl Gateway {
    /// One upstream exchange (`send`, not started until then) within
    /// `upstream.max_inflight`, timed and counted.
    pub(super) async fn exchange(
        &self,
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
        let started = Instant::now();
        let result = send.await;
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

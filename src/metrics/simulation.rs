//! What `[simulation]` did, kept apart from evalgate's own metrics so that nobody takes a
//! simulated delay or error for evalgate's: draws by kind and the simulated delays.
//! Recorded by [`crate::simulation`] once per draw.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use super::histogram::{AtomicHistogram, Percentiles, UPSTREAM_BOUNDS};
use super::labels::{family, one_label};

/// `kind` label values of `evalgate_simulated_total`: a delay drawn (nonzero), then each
/// simulated failure.
pub const KINDS: [&str; 5] = ["latency", "429", "5xx", "timeout", "reset"];

/// What one draw simulated, for [`SimulationMetrics::record`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simulated {
    TooManyRequests,
    ServerError,
    Timeout,
    Reset,
}

/// Handles on the simulation's metrics; cheap to clone (each is one `Arc`).
#[derive(Clone)]
pub struct SimulationMetrics {
    kinds: [Counter; KINDS.len()],
    delay: AtomicHistogram,
}

impl Default for SimulationMetrics {
    fn default() -> Self {
        SimulationMetrics {
            kinds: Default::default(),
            delay: AtomicHistogram::new(UPSTREAM_BOUNDS),
        }
    }
}

impl SimulationMetrics {
    pub(super) fn register(registry: &mut Registry) -> SimulationMetrics {
        let kinds = family(
            registry,
            "simulated",
            "What [simulation] did, by kind (latency: a delay was added; 429, 5xx: answered \
             instead of the upstream or the cache; timeout: held without an answer; reset: \
             the connection dropped). Not counted in evalgate's own request or upstream \
             metrics",
            one_label("kind", KINDS),
        );
        let delay = AtomicHistogram::new(UPSTREAM_BOUNDS);
        registry.register(
            "simulated_delay_seconds",
            "Delays added by [simulation] (not part of evalgate's own latency histograms)",
            delay.clone(),
        );
        SimulationMetrics { kinds, delay }
    }

    /// One draw: its delay (zero for none) and the failure it simulated, if any.
    pub fn record(&self, delay: std::time::Duration, failure: Option<Simulated>) {
        if !delay.is_zero() {
            self.kinds[0].inc();
            self.delay.observe(delay);
        }
        let i = match failure {
            None => return,
            Some(Simulated::TooManyRequests) => 1,
            Some(Simulated::ServerError) => 2,
            Some(Simulated::Timeout) => 3,
            Some(Simulated::Reset) => 4,
        };
        self.kinds[i].inc();
    }

    /// Counts so far, in [`KINDS`] order.
    pub fn counts(&self) -> [u64; KINDS.len()] {
        self.kinds.each_ref().map(Counter::get)
    }

    /// Percentiles of the delays added so far.
    pub fn delay(&self) -> Percentiles {
        self.delay.percentiles()
    }
}

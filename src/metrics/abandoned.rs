//! Cache fills nobody waits for (every client hung up, or a background refresh): how many
//! run now and how each ended, recorded by [`crate::coalesce`] on the abandon path only.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::{ABANDONED_OUTCOMES, family, one_label};

/// Handles on the abandoned-fill metrics; cheap to clone (each is one `Arc`). The default
/// is unregistered (for [`crate::coalesce::Flights`] built outside a gateway).
#[derive(Clone, Default)]
pub struct AbandonedFills {
    running: Gauge,
    /// In [`ABANDONED_OUTCOMES`] order: finished, cancelled, skipped.
    outcomes: [Counter; ABANDONED_OUTCOMES.len()],
}

impl AbandonedFills {
    pub(super) fn register(registry: &mut Registry) -> AbandonedFills {
        let running = Gauge::default();
        registry.register(
            "abandoned_fills_running",
            "Cache fills running with nobody waiting (clients hung up, background refreshes)",
            running.clone(),
        );
        let outcomes = family(
            registry,
            "abandoned_fills",
            "Cache fills nobody waited for, by outcome (finished and stored; cancelled or \
             refresh skipped past upstream.max_abandoned_fills)",
            one_label("outcome", ABANDONED_OUTCOMES),
        );
        AbandonedFills { running, outcomes }
    }

    /// A fill started running with nobody waiting.
    pub fn started(&self) {
        self.running.inc();
    }

    /// A fill running with nobody waiting ended; `finished`: it ran to its end.
    pub fn ended(&self, finished: bool) {
        self.running.dec();
        if finished {
            self.outcomes[0].inc();
        }
    }

    /// A fill whose last waiter left was cancelled: the budget was spent.
    pub fn cancelled(&self) {
        self.outcomes[1].inc();
    }

    /// A background refresh was not started: the budget was spent.
    pub fn skipped(&self) {
        self.outcomes[2].inc();
    }

    /// Fills running with nobody waiting now.
    pub fn running(&self) -> i64 {
        self.running.get()
    }

    /// Totals so far: finished, cancelled, skipped.
    pub fn totals(&self) -> [u64; ABANDONED_OUTCOMES.len()] {
        self.outcomes.each_ref().map(Counter::get)
    }
}

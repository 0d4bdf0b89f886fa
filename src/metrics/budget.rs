//! The upstream budget ([`crate::budget`]): requests that would go upstream, by outcome
//! and deployment (masked to its last four characters).
//!
//! Label cardinality is bounded like every other label here: the outcomes are fixed, and
//! the first [`LABELLED_DEPLOYMENTS`] masked deployments seen get their own series; any
//! deployment after them is counted under `deployment="other"`. Keys that end alike share
//! a series (the label is for telling a few deployments apart, not for auditing one).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::mask::Masked;

/// Masked deployments with series of their own; later ones are `other`.
pub const LABELLED_DEPLOYMENTS: usize = 32;

/// `outcome` label values, in [`BudgetOutcome`] order.
pub const BUDGET_OUTCOMES: [&str; 5] = [
    "allowed",
    "over_budget_logged",
    "refresh_skipped",
    "stale",
    "rejected",
];

/// What the budget did with one request that would go upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetOutcome {
    /// Within budget: sent (a token taken).
    Allowed = 0,
    /// Over budget in `log` mode: sent anyway.
    Logged = 1,
    /// Over budget: a background refresh not sent.
    RefreshSkipped = 2,
    /// Over budget: a client answered from a stale entry instead.
    Stale = 3,
    /// Over budget: a client answered `429`.
    Rejected = 4,
}

impl BudgetOutcome {
    /// Every outcome, in [`BUDGET_OUTCOMES`] order.
    pub const ALL: [BudgetOutcome; 5] = [
        BudgetOutcome::Allowed,
        BudgetOutcome::Logged,
        BudgetOutcome::RefreshSkipped,
        BudgetOutcome::Stale,
        BudgetOutcome::Rejected,
    ];
}

type Labels = [(&'static str, String); 2];

/// Handles on the budget metrics; cheap to clone. The default is unregistered.
#[derive(Clone, Default)]
pub struct BudgetMetrics {
    family: Family<Labels, Counter>,
    /// The masked deployments with series of their own (at most [`LABELLED_DEPLOYMENTS`]).
    labelled: Arc<Mutex<Vec<String>>>,
    totals: Arc<[AtomicU64; BUDGET_OUTCOMES.len()]>,
}

impl BudgetMetrics {
    pub(super) fn register(registry: &mut Registry) -> BudgetMetrics {
        let metrics = BudgetMetrics::default();
        registry.register(
            "upstream_budget",
            "Requests that would go upstream, by upstream-budget outcome and deployment key \
             (masked; `other` past the first 32)",
            metrics.family.clone(),
        );
        metrics
    }

    /// One request of `deployment` had `outcome`. Called once per upstream request (or
    /// refused client), never on the hit path.
    pub fn record(&self, deployment: &str, outcome: BudgetOutcome) {
        self.totals[outcome as usize].fetch_add(1, Ordering::Relaxed);
        let masked = Masked(deployment).to_string();
        let label = {
            let mut labelled = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
            if labelled.contains(&masked) {
                masked
            } else if labelled.len() < LABELLED_DEPLOYMENTS {
                labelled.push(masked.clone());
                masked
            } else {
                "other".to_string()
            }
        };
        let labels = [
            ("deployment", label),
            ("outcome", BUDGET_OUTCOMES[outcome as usize].to_string()),
        ];
        self.family.get_or_create(&labels).inc();
    }

    /// Requests with `outcome` so far, over every deployment.
    pub fn count(&self, outcome: BudgetOutcome) -> u64 {
        self.totals[outcome as usize].load(Ordering::Relaxed)
    }
}

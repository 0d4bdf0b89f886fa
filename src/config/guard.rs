//! Guard rails for traffic through to the upstream, keys of `[upstream]`:
//! `upstream.tracking` (analytics-safe mode) and the per-deployment upstream budget
//! (`upstream.budget_rps`, `budget_burst`, `budget_mode`, `budget_max_deployments`).
//! Their types and checks; the fields themselves are in [`super::UpstreamConfig`].

use serde::{Deserialize, Serialize};

use super::validate::{invalid, range};
use super::{ConfigError, UpstreamConfig};

/// `upstream.tracking`: what upstream requests say about assignment and exposure tracking.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Tracking {
    /// The client's `X-Amp-Exp-Track` is part of the key and forwarded;
    /// `X-Amp-Exp-Exposure-Track: track` goes around the cache.
    #[default]
    Passthrough,
    /// Every upstream request carries `X-Amp-Exp-Track: no-track` and
    /// `X-Amp-Exp-Exposure-Track: no-track`, whatever the client sent; the client's
    /// tracking headers neither split nor bypass the cache.
    Never,
}

impl Tracking {
    pub fn as_str(self) -> &'static str {
        match self {
            Tracking::Passthrough => "passthrough",
            Tracking::Never => "never",
        }
    }
}

/// `upstream.budget_mode`: what happens to a request over the upstream budget.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BudgetMode {
    /// A stale entry if the cache still has one, else `429` with `Retry-After`; a
    /// background refresh is skipped.
    #[default]
    Enforce,
    /// The request goes upstream anyway and is counted as over budget.
    Log,
}

impl BudgetMode {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetMode::Enforce => "enforce",
            BudgetMode::Log => "log",
        }
    }
}

/// `upstream.budget_rps` at most: far beyond any upstream a budget protects.
pub const MAX_BUDGET_RPS: f64 = 1_000_000.0;

pub(super) fn validate(u: &UpstreamConfig) -> Result<(), ConfigError> {
    if !u.budget_rps.is_finite() || !(0.0..=MAX_BUDGET_RPS).contains(&u.budget_rps) {
        return Err(invalid(
            "upstream.budget_rps",
            format!(
                "must be between 0 (off) and {MAX_BUDGET_RPS} requests per second (got {})",
                u.budget_rps
            ),
        ));
    }
    if u.budget_rps > 0.0 && u.budget_rps < 0.001 {
        return Err(invalid(
            "upstream.budget_rps",
            format!(
                "must be 0 (off) or at least 0.001 requests per second (got {})",
                u.budget_rps
            ),
        ));
    }
    range(
        "upstream.budget_burst",
        u64::from(u.budget_burst),
        1,
        1_000_000,
    )?;
    range(
        "upstream.budget_max_deployments",
        u.budget_max_deployments as u64,
        1,
        10_000_000,
    )
}

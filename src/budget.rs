//! The upstream budget: a token bucket per deployment key (`upstream.budget_rps` tokens a
//! second, up to `upstream.budget_burst`), one token per request that would go upstream
//! (a cache fill, a background refresh, a passthrough). Coalesced misses share one fill,
//! so they take one token.
//!
//! Over budget, `upstream.budget_mode = "enforce"` turns the request away
//! ([`GatewayError::OverBudget`]: the caller answers from a stale entry if it has one,
//! else `429` with `Retry-After`; a refresh is skipped) and `"log"` lets it go and counts
//! it. Nothing waits for a token: never a silent queue.
//!
//! Bounded: at most `upstream.budget_max_deployments` buckets, keyed by a per-process
//! SipHash of the deployment key (the key itself is not kept). When a new deployment
//! arrives at a full map, the least recently used bucket goes; that deployment starts
//! again from a full bucket when it comes back. So a client spraying keys can make other
//! deployments' buckets be forgotten, which hands each of them at most one extra burst per
//! eviction, and never more than one burst plus the rate in any one bucket's life. Two
//! keys whose hashes collide (about one chance in 2^64) share a bucket.
//!
//! The clock is tokio's, so tests drive the bucket with `tokio::time::pause()`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use tokio::time::Instant;

use crate::config::{BudgetMode, UpstreamConfig};
use crate::error::GatewayError;
use crate::metrics::{BudgetMetrics, BudgetOutcome};

/// What a request that would go upstream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A cache fill a client waits for: over budget, the caller answers stale or 429 and
    /// counts which ([`Budget::answered`]).
    Fill,
    /// A background refresh of a stale entry: skipped over budget.
    Refresh,
    /// A request forwarded as is: 429 over budget.
    Passthrough,
}

/// The per-deployment buckets; see the module documentation.
pub struct Budget {
    rps: f64,
    burst: f64,
    mode: BudgetMode,
    max_deployments: usize,
    hasher: RandomState,
    /// A short std lock, taken once per upstream request (never on the hit path), never
    /// held across an await.
    buckets: Mutex<Buckets>,
    metrics: BudgetMetrics,
}

#[derive(Default)]
struct Buckets {
    by_key: HashMap<u64, Bucket>,
    /// Least recently used first: last use (a sequence number) → key hash.
    by_use: BTreeMap<u64, u64>,
    uses: u64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
    used: u64,
}

impl Budget {
    /// The budget `config` sets, `None` when `upstream.budget_rps` is 0 (off).
    pub fn new(config: &UpstreamConfig, metrics: BudgetMetrics) -> Option<Budget> {
        (config.budget_rps > 0.0).then(|| Budget {
            rps: config.budget_rps,
            burst: f64::from(config.budget_burst),
            mode: config.budget_mode,
            max_deployments: config.budget_max_deployments,
            hasher: RandomState::new(),
            buckets: Mutex::default(),
            metrics,
        })
    }

    /// Takes a token for one upstream request of `deployment` ("" for a request without
    /// a deployment key: those share one bucket). `Err` when it may not go (enforce mode,
    /// over budget), with the seconds until a token is back. Counted here, except a
    /// refused fill, which the caller counts once it knows its answer.
    pub fn take(&self, deployment: &str, purpose: Purpose) -> Result<(), GatewayError> {
        let Some(retry_after_s) = self.draw(self.hasher.hash_one(deployment), Instant::now())
        else {
            self.metrics.record(deployment, BudgetOutcome::Allowed);
            return Ok(());
        };
        let outcome = match (self.mode, purpose) {
            (BudgetMode::Log, _) => {
                self.metrics.record(deployment, BudgetOutcome::Logged);
                return Ok(());
            }
            (BudgetMode::Enforce, Purpose::Fill) => None,
            (BudgetMode::Enforce, Purpose::Refresh) => Some(BudgetOutcome::RefreshSkipped),
            (BudgetMode::Enforce, Purpose::Passthrough) => Some(BudgetOutcome::Rejected),
        };
        if let Some(outcome) = outcome {
            self.metrics.record(deployment, outcome);
        }
        Err(GatewayError::OverBudget { retry_after_s })
    }

    /// Whether a background refresh of a `deployment` entry may start: it has a token now
    /// (always in log mode), not taken here (the exchange takes it). Without one the
    /// refresh is skipped before it starts, and counted, so a stale entry served while its
    /// deployment is over budget costs no task and no shared-tier lock per hit.
    pub fn refresh_allowed(&self, deployment: &str) -> bool {
        if self.mode == BudgetMode::Log {
            return true;
        }
        let hash = self.hasher.hash_one(deployment);
        let now = Instant::now();
        let allowed = self.lock().by_key.get(&hash).is_none_or(|bucket| {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            (bucket.tokens + elapsed * self.rps).min(self.burst) >= 1.0
        });
        if !allowed {
            self.metrics
                .record(deployment, BudgetOutcome::RefreshSkipped);
        }
        allowed
    }

    /// Counts how a client whose fill was refused was answered: from a stale entry, or
    /// with a 429.
    pub fn answered(&self, deployment: &str, stale: bool) {
        let outcome = match stale {
            true => BudgetOutcome::Stale,
            false => BudgetOutcome::Rejected,
        };
        self.metrics.record(deployment, outcome);
    }

    /// `upstream.budget_rps`, `budget_burst` and `budget_mode`, for `/admin/stats`.
    pub fn settings(&self) -> (f64, f64, BudgetMode) {
        (self.rps, self.burst, self.mode)
    }

    /// Deployments with a bucket now.
    pub fn tracked(&self) -> usize {
        self.lock().by_key.len()
    }

    /// Refills the bucket of `hash` to `now` and takes a token: `None` when there was one,
    /// else `Some(seconds until there is one)`, rounded up, at least 1. An empty bucket is
    /// not drawn below zero (in log mode the request goes anyway, and is not charged
    /// twice).
    fn draw(&self, hash: u64, now: Instant) -> Option<u64> {
        let mut guard = self.lock();
        let Buckets {
            by_key,
            by_use,
            uses,
        } = &mut *guard;
        *uses += 1;
        let used = *uses;
        if !by_key.contains_key(&hash)
            && by_key.len() >= self.max_deployments
            && let Some((_, oldest)) = by_use.pop_first()
        {
            by_key.remove(&oldest);
        }
        let bucket = by_key.entry(hash).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            used,
        });
        by_use.remove(&bucket.used);
        by_use.insert(used, hash);
        bucket.used = used;
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rps).min(self.burst);
        // `now` was read before the lock: another thread may have refilled to a later one.
        bucket.at = bucket.at.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return None;
        }
        let wait = ((1.0 - bucket.tokens) / self.rps).ceil();
        Some((wait as u64).max(1))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests;

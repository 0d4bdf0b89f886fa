//! The bucket on tokio's paused clock: burst, refill, `Retry-After`, independence,
//! eviction, and what each mode and purpose counts.

use std::time::Duration;

use super::{Budget, Purpose};
use crate::config::{BudgetMode, UpstreamConfig};
use crate::error::GatewayError;
use crate::metrics::{BudgetMetrics, BudgetOutcome};

fn budget(rps: f64, burst: u32, mode: BudgetMode, max: usize) -> (Budget, BudgetMetrics) {
    let config = UpstreamConfig {
        budget_rps: rps,
        budget_burst: burst,
        budget_mode: mode,
        budget_max_deployments: max,
        ..UpstreamConfig::default()
    };
    let metrics = BudgetMetrics::default();
    (Budget::new(&config, metrics.clone()).expect("on"), metrics)
}

fn retry_after(result: Result<(), GatewayError>) -> u64 {
    match result {
        Err(GatewayError::OverBudget { retry_after_s }) => retry_after_s,
        other => panic!("expected over budget, got {other:?}"),
    }
}

#[test]
fn zero_rps_is_off() {
    let config = UpstreamConfig::default();
    assert_eq!(config.budget_rps, 0.0);
    assert!(Budget::new(&config, BudgetMetrics::default()).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_burst_then_the_rate() {
    let (b, metrics) = budget(2.0, 3, BudgetMode::Enforce, 10);
    for _ in 0..3 {
        b.take("k-0001", Purpose::Fill).unwrap();
    }
    // Empty: one token is half a second away, announced as 1 s (rounded up).
    assert_eq!(retry_after(b.take("k-0001", Purpose::Fill)), 1);
    tokio::time::advance(Duration::from_millis(499)).await;
    assert!(b.take("k-0001", Purpose::Fill).is_err());
    tokio::time::advance(Duration::from_millis(1)).await;
    b.take("k-0001", Purpose::Fill).unwrap();
    // Ten seconds refill the bucket to its size, not beyond.
    tokio::time::advance(Duration::from_secs(10)).await;
    for _ in 0..3 {
        b.take("k-0001", Purpose::Fill).unwrap();
    }
    assert!(b.take("k-0001", Purpose::Fill).is_err());
    assert_eq!(metrics.count(BudgetOutcome::Allowed), 7);
    // A refused fill is counted by whoever answers its client.
    assert_eq!(metrics.count(BudgetOutcome::Rejected), 0);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_the_wait_for_one_token_rounded_up() {
    let (b, _) = budget(0.25, 1, BudgetMode::Enforce, 10);
    b.take("k", Purpose::Fill).unwrap();
    assert_eq!(retry_after(b.take("k", Purpose::Fill)), 4);
    tokio::time::advance(Duration::from_millis(2500)).await;
    assert_eq!(retry_after(b.take("k", Purpose::Fill)), 2);
    // A fast rate still says at least 1 s.
    let (fast, _) = budget(1000.0, 1, BudgetMode::Enforce, 10);
    fast.take("k", Purpose::Fill).unwrap();
    assert_eq!(retry_after(fast.take("k", Purpose::Fill)), 1);
}

#[tokio::test(start_paused = true)]
async fn deployments_have_their_own_buckets() {
    let (b, _) = budget(1.0, 2, BudgetMode::Enforce, 10);
    for _ in 0..2 {
        b.take("key-a", Purpose::Fill).unwrap();
    }
    assert!(b.take("key-a", Purpose::Fill).is_err());
    for _ in 0..2 {
        b.take("key-b", Purpose::Passthrough).unwrap();
    }
    assert!(b.take("key-b", Purpose::Passthrough).is_err());
    assert_eq!(b.tracked(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_map_is_bounded_and_the_least_recently_used_goes() {
    let (b, _) = budget(1.0, 1, BudgetMode::Enforce, 2);
    b.take("a", Purpose::Fill).unwrap();
    b.take("b", Purpose::Fill).unwrap();
    // `a` used again (refused, still a use): `b` is now the least recently used.
    assert!(b.take("a", Purpose::Fill).is_err());
    b.take("c", Purpose::Fill).unwrap();
    assert_eq!(b.tracked(), 2);
    // `a` was kept (still empty), `b` was forgotten and starts again full.
    assert!(b.take("a", Purpose::Fill).is_err());
    b.take("b", Purpose::Fill).unwrap();
    for i in 0..1000 {
        let _ = b.take(&format!("spray-{i}"), Purpose::Passthrough);
    }
    assert_eq!(b.tracked(), 2);
}

#[tokio::test(start_paused = true)]
async fn log_mode_lets_everything_go_and_counts_what_was_over() {
    let (b, metrics) = budget(1.0, 2, BudgetMode::Log, 10);
    for _ in 0..5 {
        b.take("k", Purpose::Fill).unwrap();
    }
    b.take("k", Purpose::Refresh).unwrap();
    b.take("k", Purpose::Passthrough).unwrap();
    assert_eq!(metrics.count(BudgetOutcome::Allowed), 2);
    assert_eq!(metrics.count(BudgetOutcome::Logged), 5);
    // Not charged below zero: one second brings one token back.
    tokio::time::advance(Duration::from_secs(1)).await;
    b.take("k", Purpose::Fill).unwrap();
    assert_eq!(metrics.count(BudgetOutcome::Allowed), 3);
}

#[tokio::test(start_paused = true)]
async fn enforce_counts_skipped_refreshes_and_rejected_passthroughs() {
    let (b, metrics) = budget(1.0, 1, BudgetMode::Enforce, 10);
    b.take("k", Purpose::Refresh).unwrap();
    assert!(b.take("k", Purpose::Refresh).is_err());
    assert!(b.take("k", Purpose::Passthrough).is_err());
    assert!(b.take("k", Purpose::Fill).is_err());
    b.answered("k", true);
    b.answered("k", false);
    assert_eq!(metrics.count(BudgetOutcome::Allowed), 1);
    assert_eq!(metrics.count(BudgetOutcome::RefreshSkipped), 1);
    assert_eq!(metrics.count(BudgetOutcome::Rejected), 2);
    assert_eq!(metrics.count(BudgetOutcome::Stale), 1);
}

//! Flights driven by their waiters: shared outcomes, hand-over when every waiter leaves
//! (within the budget of flights nobody waits for, cancelled past it), panics contained.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{Flights, Landed, Outcome};
use crate::error::GatewayError;
use crate::key::{CacheKey, RouteFamily};
use crate::metrics::AbandonedFills;
use crate::upstream::UpstreamResponse;

/// Generous bound proving "does not hang", never a speed requirement.
const BOUND: Duration = Duration::from_secs(10);

fn key(name: &str) -> CacheKey {
    CacheKey::new(
        RouteFamily::V1Vardata,
        "deployment-0001",
        None,
        format!("/v1/vardata?user_id={name}"),
    )
}

fn ok(body: &'static str) -> Outcome {
    Ok(Arc::new(Landed::Upstream(UpstreamResponse {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: Bytes::from_static(body.as_bytes()),
    })))
}

/// A fetch that answers once `go` fires and reports on `done` that it ran to the end.
async fn gated(go: oneshot::Receiver<()>, done: oneshot::Sender<()>) -> Outcome {
    let _ = go.await;
    let _ = done.send(());
    ok("answer")
}

/// A gated flight for `k` started in a task of its own, registered by the time this
/// returns; fire `go` to let it answer, `finished` tells that its fetch ran to the end.
async fn start_gated(
    flights: &Flights,
    k: &CacheKey,
) -> (
    JoinHandle<(Outcome, bool)>,
    oneshot::Sender<()>,
    oneshot::Receiver<()>,
) {
    let (go, gate) = oneshot::channel();
    let (done, finished) = oneshot::channel();
    let task = {
        let (flights, k) = (flights.clone(), k.clone());
        tokio::spawn(async move {
            flights
                .join_or_start(&k, flights.mark(), |_| gated(gate, done))
                .await
        })
    };
    while flights.is_empty() {
        tokio::task::yield_now().await;
    }
    (task, go, finished)
}

/// [`start_gated`] while `n - 1` other flights are in progress: registered by the time
/// this returns.
async fn start_gated_beside(
    flights: &Flights,
    k: &CacheKey,
    n: usize,
) -> (
    JoinHandle<(Outcome, bool)>,
    oneshot::Sender<()>,
    oneshot::Receiver<()>,
) {
    let (go, gate) = oneshot::channel();
    let (done, finished) = oneshot::channel();
    let task = {
        let (flights, k) = (flights.clone(), k.clone());
        tokio::spawn(async move {
            flights
                .join_or_start(&k, flights.mark(), |_| gated(gate, done))
                .await
        })
    };
    while flights.len() < n {
        tokio::task::yield_now().await;
    }
    (task, go, finished)
}

/// A second request for `k` in a task of its own, joined by the time this returns.
async fn join(flights: &Flights, k: &CacheKey) -> JoinHandle<(Outcome, bool)> {
    let task = {
        let (flights, k) = (flights.clone(), k.clone());
        tokio::spawn(async move {
            flights
                .join_or_start(&k, flights.mark(), |_| async {
                    panic!("a joiner's fetch never runs")
                })
                .await
        })
    };
    tokio::task::yield_now().await;
    task
}

#[tokio::test]
async fn every_waiter_gets_the_one_outcome() {
    let flights = Flights::default();
    let k = key("shared");
    let (first, go, _finished) = start_gated(&flights, &k).await;
    let second = join(&flights, &k).await;
    go.send(()).unwrap();
    let (a, joined_a) = first.await.unwrap();
    let (b, joined_b) = second.await.unwrap();
    assert!(!joined_a && joined_b);
    assert_eq!(a.unwrap().body(), "answer");
    assert_eq!(b.unwrap().body(), "answer");
    assert!(flights.is_empty(), "a landed flight leaves the map");
}

#[tokio::test]
async fn a_flight_every_waiter_left_still_lands() {
    let flights = Flights::default();
    let (waiter, go, finished) = start_gated(&flights, &key("abandoned")).await;
    // The only waiter goes away (its client hung up) while the fetch is in progress.
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
    assert_eq!(flights.len(), 1, "the flight lives on");
    go.send(()).unwrap();
    tokio::time::timeout(BOUND, finished)
        .await
        .expect("the fetch runs to its end with nobody waiting")
        .unwrap();
    tokio::time::timeout(BOUND, async {
        while !flights.is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("and then leaves the map");
}

#[tokio::test]
async fn a_flight_one_waiter_left_is_driven_by_the_others() {
    let flights = Flights::default();
    let k = key("partly");
    let (leader, go, _finished) = start_gated(&flights, &k).await;
    let follower = join(&flights, &k).await;
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    go.send(()).unwrap();
    let (outcome, _) = tokio::time::timeout(BOUND, follower)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.unwrap().body(), "answer");
}

#[tokio::test]
async fn a_panicking_fetch_is_an_internal_error_for_every_waiter() {
    let flights = Flights::default();
    let k = key("panics");
    let (outcome, _) = flights
        .join_or_start(&k, flights.mark(), |_| async { panic!("fetch bug") })
        .await;
    assert!(matches!(outcome, Err(GatewayError::Internal)));
    assert!(flights.is_empty());
    // The key is usable again.
    let (outcome, joined) = flights
        .join_or_start(&k, flights.mark(), |_| async { ok("again") })
        .await;
    assert!(!joined);
    assert_eq!(outcome.unwrap().body(), "again");
}

#[tokio::test]
async fn a_background_refresh_runs_without_waiters() {
    let flights = Flights::default();
    let k = key("refresh");
    let (go, gate) = oneshot::channel();
    let (done, finished) = oneshot::channel();
    flights.start_if_idle(&k, gated(gate, done));
    // A second start while one is in progress does nothing.
    flights.start_if_idle(&k, async { panic!("never started") });
    go.send(()).unwrap();
    tokio::time::timeout(BOUND, finished)
        .await
        .unwrap()
        .unwrap();
}

/// What a fetch for `k` is told about landings since `mark`.
async fn told(flights: &Flights, k: &CacheKey, mark: super::Mark) -> bool {
    let mut seen = None;
    let (outcome, _) = flights
        .join_or_start(k, mark, |maybe_landed| {
            seen = Some(maybe_landed);
            async { ok("x") }
        })
        .await;
    assert!(outcome.is_ok());
    seen.expect("a new flight calls its fetch")
}

#[tokio::test]
async fn a_fetch_is_told_whether_its_key_may_have_landed_since_the_lookup() {
    let flights = Flights::default();
    let (a, b) = (key("a"), key("b"));
    let before = flights.mark();
    assert!(!told(&flights, &a, before).await, "nothing landed yet");
    // `a` has landed since `before`: a request that looked up before must look again.
    assert!(told(&flights, &a, before).await);
    // Another key landing says nothing about this one.
    let mark = flights.mark();
    assert!(!told(&flights, &a, mark).await);
    let mark = flights.mark();
    told(&flights, &b, flights.mark()).await;
    assert!(!told(&flights, &a, mark).await);
}

#[tokio::test]
async fn too_many_landings_to_tell_mean_look_again() {
    let flights = Flights::default();
    let old = flights.mark();
    for i in 0..=super::RECENT {
        told(&flights, &key(&format!("other-{i}")), flights.mark()).await;
    }
    assert!(told(&flights, &key("unrelated"), old).await);
}

/// The only waiter of `waiter`'s flight goes away (its client hung up).
async fn abandon(waiter: JoinHandle<(Outcome, bool)>) {
    waiter.abort();
    assert!(waiter.await.unwrap_err().is_cancelled());
}

#[tokio::test]
async fn with_no_budget_an_abandoned_flight_is_cancelled_and_leaves_the_map() {
    let metrics = AbandonedFills::default();
    let flights = Flights::new(0, metrics.clone());
    let k = key("cancelled");
    let (waiter, _go, finished) = start_gated(&flights, &k).await;
    abandon(waiter).await;
    assert!(flights.is_empty(), "cancelled at once, out of the map");
    assert!(
        finished.await.is_err(),
        "its fetch was dropped, never run to its end"
    );
    assert_eq!(metrics.totals(), [0, 1, 0]);
    assert_eq!(metrics.running(), 0);
    // The next request for the key starts afresh.
    let (outcome, joined) = flights
        .join_or_start(&k, flights.mark(), |_| async { ok("afresh") })
        .await;
    assert!(!joined);
    assert_eq!(outcome.unwrap().body(), "afresh");
}

#[tokio::test]
async fn abandoned_flights_run_within_the_budget_and_are_cancelled_past_it() {
    let metrics = AbandonedFills::default();
    let flights = Flights::new(1, metrics.clone());
    let (a, b, c) = (key("a"), key("b"), key("c"));
    let (waiter_a, go_a, finished_a) = start_gated(&flights, &a).await;
    abandon(waiter_a).await;
    assert_eq!((flights.len(), metrics.running()), (1, 1), "a runs on");
    // The budget is spent: b is cancelled when its waiter leaves, and leaves the map.
    let (waiter_b, _go_b, finished_b) = start_gated_beside(&flights, &b, 2).await;
    abandon(waiter_b).await;
    assert_eq!(flights.len(), 1, "only a is left");
    assert!(finished_b.await.is_err(), "b's fetch was dropped");
    assert_eq!(metrics.totals(), [0, 1, 0]);
    // A request for b starts a new flight, not one joining the cancelled one.
    let (outcome, joined) = flights
        .join_or_start(&b, flights.mark(), |_| async { ok("b again") })
        .await;
    assert!(!joined);
    assert_eq!(outcome.unwrap().body(), "b again");
    // a lands, which gives its share of the budget back.
    go_a.send(()).unwrap();
    tokio::time::timeout(BOUND, finished_a)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(BOUND, async {
        while metrics.running() != 0 || !flights.is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("a's task ends and a leaves the map");
    assert_eq!(metrics.totals(), [1, 1, 0]);
    // So c, abandoned now, runs on.
    let (waiter_c, go_c, finished_c) = start_gated(&flights, &c).await;
    abandon(waiter_c).await;
    assert_eq!((flights.len(), metrics.running()), (1, 1));
    go_c.send(()).unwrap();
    tokio::time::timeout(BOUND, finished_c)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_flight_with_a_waiter_left_is_never_cancelled() {
    let metrics = AbandonedFills::default();
    let flights = Flights::new(0, metrics.clone());
    let k = key("one-stays");
    let (leader, go, _finished) = start_gated(&flights, &k).await;
    let follower = join(&flights, &k).await;
    abandon(leader).await;
    go.send(()).unwrap();
    let (outcome, joined) = tokio::time::timeout(BOUND, follower)
        .await
        .unwrap()
        .unwrap();
    assert!(joined);
    assert_eq!(outcome.unwrap().body(), "answer");
    assert_eq!(metrics.totals(), [0, 0, 0]);
}

#[tokio::test]
async fn a_refresh_past_the_budget_is_not_started() {
    let metrics = AbandonedFills::default();
    let flights = Flights::new(1, metrics.clone());
    let (go, gate) = oneshot::channel();
    let (done, finished) = oneshot::channel();
    flights.start_if_idle(&key("first"), gated(gate, done));
    assert_eq!((flights.len(), metrics.running()), (1, 1));
    // The budget is spent by the first refresh: this one is skipped.
    flights.start_if_idle(&key("second"), async { panic!("never started") });
    assert_eq!(flights.len(), 1);
    assert_eq!(metrics.totals(), [0, 0, 1]);
    go.send(()).unwrap();
    tokio::time::timeout(BOUND, finished)
        .await
        .unwrap()
        .unwrap();
}

//! The upstream connection pool, seen from the upstream: keep-alive reuse, the idle
//! timeout, the bound on parked connections, and connections the upstream closed.

mod support;

use std::time::Duration;

use support::*;

/// Generous bound proving "does not hang", never a speed requirement.
const BOUND: Duration = Duration::from_secs(10);

async fn miss(gw: &TestGateway, user: &str) -> Got {
    let got = get_with_key(
        &client(),
        &gw.url(&format!("/v1/vardata?user_id={user}")),
        KEY,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.x_cache(), "MISS");
    got
}

#[tokio::test]
async fn sequential_misses_share_one_keep_alive_connection() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    for i in 0..5 {
        miss(&gw, &format!("seq-{i}")).await;
    }
    assert_eq!(upstream.count(), 5);
    assert_eq!(upstream.connections(), 1);
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_pool_idle_timeout() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.upstream.pool_idle_timeout_ms = 200;
    let gw = TestGateway::start(config).await;
    miss(&gw, "idle-1").await;
    assert_eq!(upstream.connections(), 1);
    // Nothing checks a connection out: the reaper closes it.
    tokio::time::timeout(BOUND, upstream.wait_open_at_most(0))
        .await
        .expect("the idle connection is closed");
    miss(&gw, "idle-2").await;
    assert_eq!(
        upstream.connections(),
        2,
        "a new connection after the idle one closed"
    );
}

#[tokio::test]
async fn at_most_pool_max_idle_per_host_connections_are_kept() {
    let upstream = FakeUpstream::start().await;
    upstream.set_delay(Duration::from_millis(100));
    let mut config = config_for(&upstream.url());
    config.upstream.pool_max_idle_per_host = 1;
    config.upstream.pipeline_depth = 1; // the pool's own behaviour, whatever the test run sets
    let gw = TestGateway::start(config).await;
    let gw_url = gw.url("/v1/vardata");
    let concurrent: Vec<_> = (0..4)
        .map(|i| {
            let url = format!("{gw_url}?user_id=many-{i}");
            tokio::spawn(async move { get_with_key(&client(), &url, KEY).await })
        })
        .collect();
    for c in concurrent {
        assert_eq!(c.await.unwrap().status, 200);
    }
    assert_eq!(
        upstream.connections(),
        4,
        "one connection per concurrent miss"
    );
    tokio::time::timeout(BOUND, upstream.wait_open_at_most(1))
        .await
        .expect("all but one are closed when they go idle");
    upstream.set_delay(Duration::ZERO);
    miss(&gw, "after").await;
    assert_eq!(upstream.connections(), 4, "the kept one is reused");
}

#[tokio::test]
async fn with_no_idle_connections_kept_every_request_connects() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.upstream.pool_max_idle_per_host = 0;
    let gw = TestGateway::start(config).await;
    for i in 0..3 {
        miss(&gw, &format!("nopool-{i}")).await;
    }
    assert_eq!(upstream.connections(), 3);
    tokio::time::timeout(BOUND, upstream.wait_open_at_most(0))
        .await
        .expect("no connection is left open");
}

#[tokio::test]
async fn a_parked_connection_the_upstream_closed_is_not_used_again() {
    let upstream = FakeUpstream::start().await;
    let addr = upstream.addr;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    miss(&gw, "before-restart").await;
    // The upstream restarts on the same port: the parked connection is closed under it.
    upstream.stop().await;
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let upstream = FakeUpstream::start_on(listener).await;
    miss(&gw, "after-restart").await;
    assert_eq!(upstream.count(), 1);
    assert_eq!(upstream.connections(), 1);
}

//! Cache fills nobody waits for are bounded (`upstream.max_abandoned_fills`): an HTTP/2
//! client that opens streams for new keys and resets them cannot pile up upstream
//! requests nor crowd other clients' misses out, and a fill abandoned within the bound is
//! still stored.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use evalgate::{Config, Gateway};
use h2::client::{ResponseFuture, SendRequest};
use http::Request;
use support::*;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Generous bound proving "does not hang", never a speed requirement.
const NO_HANG: Duration = Duration::from_secs(10);

/// Requests whose user id contains this are held by the upstream until released.
const HELD: &str = "held-";

/// A gateway in front of `upstream`, which holds requests for [`HELD`] keys, with at most
/// `budget` fills running with nobody waiting.
async fn holding(upstream: &FakeUpstream, budget: usize) -> (Gateway, TestGateway) {
    upstream.update(|s| s.hold = Some(HELD));
    let mut config: Config = config_for(&upstream.url());
    config.upstream.max_abandoned_fills = budget;
    // A held request would keep a pipelined lane's later requests from the upstream
    // (which answers a connection's requests in turn); cancelled fills on pipelined lanes
    // are covered by the pipeline's own tests.
    config.upstream.pipeline_depth = 1;
    config.upstream.max_inflight = 64;
    // Held requests are held for the whole test, never ended by the gateway's timeout.
    config.upstream.timeout_ms = 3_600_000;
    let gateway = Gateway::new(config.validate().unwrap()).unwrap();
    let gw = TestGateway::start_gateway(gateway.clone()).await;
    (gateway, gw)
}

/// An HTTP/2 (prior knowledge) connection to `addr`, and the task driving it.
async fn h2_connect(addr: SocketAddr) -> (SendRequest<Bytes>, JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    (client, driver)
}

/// Opens a stream for `/v1/vardata?user_id=<user>`; reset it with [`reset`].
async fn open(
    client: SendRequest<Bytes>,
    user: &str,
) -> (SendRequest<Bytes>, ResponseFuture, h2::SendStream<Bytes>) {
    let mut client = client.ready().await.unwrap();
    let request = Request::get(format!("http://evalgate/v1/vardata?user_id={user}"))
        .header("authorization", format!("Api-Key {KEY}"))
        .body(())
        .unwrap();
    let (response, stream) = client.send_request(request, true).unwrap();
    (client, response, stream)
}

/// The client gives up on a stream: RST_STREAM(CANCEL).
fn reset((response, mut stream): (ResponseFuture, h2::SendStream<Bytes>)) {
    stream.send_reset(h2::Reason::CANCEL);
    drop(response);
}

#[tokio::test]
async fn paced_stream_resets_neither_pile_up_upstream_requests_nor_fail_other_misses() {
    const STREAMS: usize = 24;
    const BUDGET: usize = 8;
    const ROUNDS: usize = 4;
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = holding(&upstream, BUDGET).await;
    let (mut h2, driver) = h2_connect(gw.addr).await;
    let other = client();
    for round in 0..ROUNDS {
        let before = upstream.count();
        let mut streams = Vec::new();
        for i in 0..STREAMS {
            let (next, response, stream) = open(h2, &format!("{HELD}{round}-{i}")).await;
            h2 = next;
            streams.push((response, stream));
        }
        timeout(NO_HANG, upstream.wait_for(before + STREAMS))
            .await
            .expect("every stream's fill reaches the upstream");
        // While they are all held upstream, another client's misses are answered.
        let url = gw.url(&format!("/v1/vardata?user_id=other-{round}"));
        let got = get_with_key(&other, &url, KEY).await;
        assert_eq!((got.status.as_u16(), got.x_cache()), (200, "MISS"));
        streams.into_iter().for_each(reset);
        // The next round once the resets have taken effect: fills past the budget are
        // cancelled, and the upstream sees their requests go.
        timeout(NO_HANG, upstream.wait_active_at_most(BUDGET))
            .await
            .expect("only the budget's worth of abandoned fills go on upstream");
    }
    // At most: every stream open on the connection, the abandoned fills within the
    // budget, and the other client's one miss at a time.
    assert!(
        upstream.peak() <= STREAMS + BUDGET + 1,
        "peak {} upstream requests",
        upstream.peak()
    );
    let abandoned = gateway.metrics().abandoned_fills();
    assert_eq!(abandoned.running(), BUDGET as i64);
    let cancelled = (ROUNDS * STREAMS - BUDGET) as u64;
    assert_eq!(abandoned.totals(), [0, cancelled, 0]);
    let text = gateway.metrics().encode();
    assert!(
        text.contains(&format!(
            "evalgate_abandoned_fills_total{{outcome=\"cancelled\"}} {cancelled}"
        )),
        "{text}"
    );
    // The fills within the budget finish once the upstream answers, and are stored.
    upstream.release_held();
    timeout(NO_HANG, async {
        while abandoned.running() > 0 {
            upstream.wait_active_at_most(0).await;
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the abandoned fills finish");
    assert_eq!(abandoned.totals(), [BUDGET as u64, cancelled, 0]);
    driver.abort();
}

#[tokio::test]
async fn a_fill_abandoned_within_the_budget_is_still_stored() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = holding(&upstream, 1).await;
    let (h2, driver) = h2_connect(gw.addr).await;
    let user = format!("{HELD}stored");
    let (_h2, response, stream) = open(h2, &user).await;
    timeout(NO_HANG, upstream.wait_for(1)).await.unwrap();
    reset((response, stream));
    let abandoned = gateway.metrics().abandoned_fills();
    timeout(NO_HANG, async {
        while abandoned.running() == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the fill runs on with nobody waiting");
    upstream.release_held();
    // The fill ran on: the next request joins it or finds its answer stored.
    let url = gw.url(&format!("/v1/vardata?user_id={user}"));
    let got = get_with_key(&client(), &url, KEY).await;
    assert_eq!(got.status, 200);
    assert_eq!(get_with_key(&client(), &url, KEY).await.x_cache(), "HIT");
    assert_eq!(upstream.count(), 1);
    driver.abort();
}

#[tokio::test]
async fn with_no_budget_an_abandoned_fill_is_cancelled_and_asked_afresh() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = holding(&upstream, 0).await;
    let (h2, driver) = h2_connect(gw.addr).await;
    let user = format!("{HELD}cancelled");
    let (_h2, response, stream) = open(h2, &user).await;
    timeout(NO_HANG, upstream.wait_for(1)).await.unwrap();
    reset((response, stream));
    // The upstream request is abandoned with the fill: the upstream sees it go.
    timeout(NO_HANG, upstream.wait_active_at_most(0))
        .await
        .expect("the cancelled fill's upstream request is dropped");
    assert_eq!(gateway.metrics().abandoned_fills().totals(), [0, 1, 0]);
    assert_eq!(gateway.metrics().inflight_now(), 0, "its permit is free");
    upstream.release_held();
    let url = gw.url(&format!("/v1/vardata?user_id={user}"));
    let got = get_with_key(&client(), &url, KEY).await;
    assert_eq!((got.status.as_u16(), got.x_cache()), (200, "MISS"));
    assert_eq!(upstream.count(), 2, "nothing was stored: asked again");
    driver.abort();
}

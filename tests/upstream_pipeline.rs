//! Cache fills on pipelined upstream connections (`upstream.pipeline_depth` > 1), seen
//! from the client and from the upstream: fills started together share one connection,
//! every answer reaches the request it belongs to and is stored under its own key,
//! 400/401 pass through untouched, and passthrough requests never use the pipeline.
//! (`EVALGATE_TEST_PIPELINE_DEPTH=8 cargo test` runs every other test this way too.)

mod support;

use bytes::Bytes;
use evalgate::Gateway;
use futures_util::future::join_all;
use http::{Method, Request};
use http_body_util::{BodyExt, Empty};
use support::*;

fn pipelined(upstream: &FakeUpstream, depth: usize) -> evalgate::Config {
    let mut config = config_for(&upstream.url());
    config.upstream.pipeline_depth = depth;
    config
}

fn vardata(user: &str, key: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("/v1/vardata?user_id={user}&flag_key=f"))
        .header("authorization", format!("Api-Key {key}"))
        .body(Empty::new())
        .unwrap()
}

/// Status, `X-Cache` and body of one in-process request.
async fn answer(gateway: &Gateway, request: Request<Empty<Bytes>>) -> (u16, String, String) {
    let response = gateway.handle(request).await;
    let status = response.status().as_u16();
    let x_cache = response.headers()["x-cache"].to_str().unwrap().to_string();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, x_cache, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn fills_started_together_share_one_connection_and_each_gets_its_own_answer() {
    let upstream = FakeUpstream::start().await;
    let gateway = Gateway::new(pipelined(&upstream, 32).validate().unwrap()).unwrap();
    let users: Vec<String> = (0..20).map(|i| format!("together-{i}")).collect();
    // Polled together in one task, so all 20 fills start in the same scheduler pass.
    let first = join_all(users.iter().map(|u| answer(&gateway, vardata(u, KEY)))).await;
    assert_eq!(upstream.count(), 20);
    assert_eq!(upstream.connections(), 1, "one batch on one connection");
    for (user, (status, x_cache, body)) in users.iter().zip(&first) {
        assert_eq!((*status, x_cache.as_str()), (200, "MISS"));
        // The fake upstream echoes the request it was asked: this answer is this user's.
        assert!(
            body.contains(&format!("user_id={user}\"")),
            "{user}: {body}"
        );
    }
    let again = join_all(users.iter().map(|u| answer(&gateway, vardata(u, KEY)))).await;
    for ((_, _, body), (status, x_cache, hit)) in first.iter().zip(&again) {
        assert_eq!((*status, x_cache.as_str()), (200, "HIT"));
        assert_eq!(hit, body, "each entry holds its own answer");
    }
    assert_eq!(upstream.count(), 20);
}

#[tokio::test]
async fn a_batch_never_exceeds_the_depth() {
    let upstream = FakeUpstream::start().await;
    let gateway = Gateway::new(pipelined(&upstream, 4).validate().unwrap()).unwrap();
    let users: Vec<String> = (0..10).map(|i| format!("deep-{i}")).collect();
    let answers = join_all(users.iter().map(|u| answer(&gateway, vardata(u, KEY)))).await;
    assert!(answers.iter().all(|(status, _, _)| *status == 200));
    assert_eq!(upstream.connections(), 3, "4 + 4 + 2");
}

#[tokio::test]
async fn concurrent_clients_over_sockets_get_their_own_answers() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(pipelined(&upstream, 8)).await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let url = gw.url(&format!("/v1/vardata?user_id=socket-{i}"));
            tokio::spawn(async move { (i, get_with_key(&client(), &url, KEY).await) })
        })
        .collect();
    for task in tasks {
        let (i, got) = task.await.unwrap();
        assert_eq!(got.status, 200);
        let body = String::from_utf8(got.body.to_vec()).unwrap();
        assert!(
            body.contains(&format!("user_id=socket-{i}\"")),
            "{i}: {body}"
        );
    }
    assert_eq!(upstream.count(), 64);
}

#[tokio::test]
async fn upstream_401_passes_through_untouched_and_is_asked_again() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(pipelined(&upstream, 8)).await;
    let url = gw.url("/v1/vardata?user_id=denied");
    for expected_count in [1, 2] {
        let got = get_with_key(&client(), &url, "server-unknown-key").await;
        assert_eq!(got.status, 401);
        assert_eq!(
            got.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(got.header("www-authenticate"), Some("Api-Key"));
        assert_eq!(got.x_cache(), "MISS");
        assert_eq!(upstream.count(), expected_count, "never stored");
    }
}

#[tokio::test]
async fn passthrough_requests_never_use_the_pipeline() {
    let upstream = FakeUpstream::start().await;
    let gateway = Gateway::new(pipelined(&upstream, 8).validate().unwrap()).unwrap();
    let passthrough = Request::builder()
        .method(Method::GET)
        .uri("/some/other/path?x=1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let (status, x_cache, _) = answer(&gateway, passthrough).await;
    assert_eq!((status, x_cache.as_str()), (200, "BYPASS"));
    assert_eq!(gateway.upstream().pipelined_connections(), 0);
    answer(&gateway, vardata("fill", KEY)).await;
    assert_eq!(gateway.upstream().pipelined_connections(), 1);
}

#[tokio::test]
async fn a_fill_cancelled_on_a_pipelined_lane_frees_its_permit_and_shifts_no_answer() {
    let upstream = FakeUpstream::start().await;
    // The upstream answers a connection's requests in turn, and holds b's.
    upstream.update(|s| s.hold = Some("user_id=b"));
    let mut config = pipelined(&upstream, 8);
    config.upstream.max_abandoned_fills = 0;
    let gateway = Gateway::new(config.validate().unwrap()).unwrap();
    // Spawned in one pass of this single-threaded runtime: one batch, a then b then c.
    let fills: Vec<_> = ["a", "b", "c"]
        .into_iter()
        .map(|user| {
            let gateway = gateway.clone();
            tokio::spawn(async move { answer(&gateway, vardata(user, KEY)).await })
        })
        .collect();
    let [a, b, c]: [_; 3] = fills.try_into().unwrap();
    upstream.wait_for(2).await; // a answered, b held, c behind it on the lane
    assert_eq!(upstream.connections(), 1);
    let (_, _, a_body) = a.await.unwrap();
    assert!(a_body.contains("user_id=a\""), "{a_body}");
    // b's client hangs up: with no budget its fill is cancelled and its permit freed.
    b.abort();
    assert!(b.await.unwrap_err().is_cancelled());
    assert_eq!(gateway.metrics().abandoned_fills().totals(), [0, 1, 0]);
    assert_eq!(
        gateway.metrics().inflight_now(),
        1,
        "only c's exchange is left"
    );
    // b's answer, when it comes, is read and dropped: c gets its own.
    upstream.release_held();
    let (status, x_cache, c_body) = c.await.unwrap();
    assert_eq!((status, x_cache.as_str()), (200, "MISS"));
    assert!(c_body.contains("user_id=c\""), "{c_body}");
    for (user, body) in [("a", &a_body), ("c", &c_body)] {
        let (_, x_cache, again) = answer(&gateway, vardata(user, KEY)).await;
        assert_eq!((x_cache.as_str(), &again), ("HIT", body));
    }
    // b was never stored: asked afresh.
    let (status, x_cache, b_body) = answer(&gateway, vardata("b", KEY)).await;
    assert_eq!((status, x_cache.as_str()), (200, "MISS"));
    assert!(b_body.contains("user_id=b\""), "{b_body}");
    assert_eq!(upstream.count(), 4);
}

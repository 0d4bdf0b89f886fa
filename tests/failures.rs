//! Upstream failures: unreachable, slow, garbage, non-JSON 200s, 4xx pass-through, and
//! the `upstream.max_inflight` cap.

mod support;

use std::time::Duration;

use http::{Method, StatusCode};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::timeout;

/// Generous bound proving "answers, does not hang" (the configured timeouts are ~200 ms).
const NO_HANG: Duration = Duration::from_secs(5);

/// Asserts evalgate's own JSON error: the status, `application/json`, `{"error": "…"}`.
fn assert_json_error(got: &Got, status: StatusCode) {
    assert_eq!(got.status, status, "body: {:?}", got.body);
    assert_eq!(got.header("content-type"), Some("application/json"));
    let json = got.json();
    assert!(
        json["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
}

#[tokio::test]
async fn unreachable_upstream_is_502_json() {
    // A port nobody listens on: bind, note it, close it.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let mut config = config_for(&format!("http://127.0.0.1:{port}"));
    config.upstream.connect_timeout_ms = 200;
    let gw = TestGateway::start(config).await;
    let c = client();
    let got = timeout(
        NO_HANG,
        get_with_key(&c, &gw.url("/v1/vardata?user_id=u1"), KEY),
    )
    .await
    .expect("a 502 long before the outer timeout");
    assert_json_error(&got, StatusCode::BAD_GATEWAY);
    assert_eq!(got.x_cache(), "MISS");
    assert_eq!(got.json()["error"], "upstream unreachable");

    // The passthrough fails the same way.
    let got = timeout(NO_HANG, send(&c, Method::GET, &gw.url("/other"), &[], ""))
        .await
        .expect("a 502 long before the outer timeout");
    assert_json_error(&got, StatusCode::BAD_GATEWAY);
    assert_eq!(got.x_cache(), "BYPASS");
}

#[tokio::test]
async fn slow_upstream_is_504_json_while_hits_are_served() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.upstream.timeout_ms = 200;
    let gw = TestGateway::start(config).await;
    let c = client();
    let warm = gw.url("/v1/vardata?user_id=warm");
    let cold = gw.url("/v1/vardata?user_id=cold");

    let first = get_with_key(&c, &warm, KEY).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.x_cache(), "MISS");

    upstream.set_delay(Duration::from_secs(2));
    let slow = {
        let (c, cold) = (c.clone(), cold.clone());
        tokio::spawn(async move { get_with_key(&c, &cold, KEY).await })
    };
    upstream.wait_for(2).await;
    // While the upstream sits on the cold request, the warm key answers from the cache.
    let hit = timeout(NO_HANG, get_with_key(&c, &warm, KEY))
        .await
        .expect("a hit does not wait for the upstream");
    assert_eq!(hit.status, StatusCode::OK);
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.body, first.body);

    let got = timeout(NO_HANG, slow)
        .await
        .expect("a 504 long before the outer timeout")
        .unwrap();
    assert_json_error(&got, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(got.x_cache(), "MISS");
    assert_eq!(got.json()["error"], "upstream timed out");
    assert_eq!(upstream.count(), 2);
    upstream.stop().await;
}

#[tokio::test]
async fn garbage_from_upstream_is_502_json() {
    // An "upstream" that reads the request head, answers garbage and closes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let garbage = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let mut chunk = [0u8; 1024];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&chunk[..n]),
                }
            }
            let _ = stream.write_all(b"not http\r\n\r\n").await;
            let _ = stream.shutdown().await;
        }
    });

    let gw = TestGateway::start(config_for(&format!("http://{addr}"))).await;
    let c = client();
    let got = timeout(
        NO_HANG,
        get_with_key(&c, &gw.url("/v1/vardata?user_id=u1"), KEY),
    )
    .await
    .expect("a 502 long before the outer timeout");
    assert_json_error(&got, StatusCode::BAD_GATEWAY);
    assert_eq!(got.x_cache(), "MISS");
    assert_eq!(got.json()["error"], "upstream answered garbage");
    garbage.abort();
}

#[tokio::test]
async fn non_object_200_is_502_and_not_cached() {
    for raw in ["not json at all", "[1,2,3]", "\"a string\""] {
        let upstream = FakeUpstream::start().await;
        upstream.script(Script {
            raw_body: Some(raw),
            ..Script::default()
        });
        let gw = TestGateway::start(config_for(&upstream.url())).await;
        let c = client();
        let url = gw.url("/v1/vardata?user_id=u1");
        for round in 1..=2 {
            let got = get_with_key(&c, &url, KEY).await;
            assert_json_error(&got, StatusCode::BAD_GATEWAY);
            assert_eq!(got.x_cache(), "MISS", "{raw}, round {round}");
            assert_eq!(upstream.count(), round, "{raw}: asked the upstream again");
        }
        // Once the upstream recovers, the key is fetched and cached normally.
        upstream.script(Script::default());
        let got = get_with_key(&c, &url, KEY).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.x_cache(), "MISS");
        assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");
        assert_eq!(upstream.count(), 3);
        gw.shutdown().await;
        upstream.stop().await;
    }
}

/// Asserts the gateway relayed `direct` (the upstream's own answer) byte for byte.
fn assert_relayed(got: &Got, direct: &Got) {
    assert_eq!(got.status, direct.status);
    assert_eq!(got.header("content-type"), direct.header("content-type"));
    assert!(got.header("content-type").is_some());
    assert_eq!(got.body, direct.body);
    assert_eq!(got.x_cache(), "MISS");
}

#[tokio::test]
async fn upstream_401_passes_through_and_is_not_cached() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let bad_key = "server-unknown-key";
    let direct = get_with_key(
        &c,
        &format!("{}/v1/vardata?user_id=u1", upstream.url()),
        bad_key,
    )
    .await;
    assert_eq!(direct.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.count(), 1);

    let url = gw.url("/v1/vardata?user_id=u1");
    for round in 1..=2 {
        let got = get_with_key(&c, &url, bad_key).await;
        assert_relayed(&got, &direct);
        assert_eq!(upstream.count(), 1 + round, "a 401 is never cached");
    }
    // The same query with a valid key is unaffected.
    let ok = get_with_key(&c, &url, KEY).await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn upstream_400_passes_through_and_is_not_cached() {
    let upstream = FakeUpstream::start().await;
    upstream.script(Script {
        status: Some(StatusCode::BAD_REQUEST),
        ..Script::default()
    });
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let direct = get_with_key(
        &c,
        &format!("{}/v1/vardata?user_id=u1", upstream.url()),
        KEY,
    )
    .await;
    assert_eq!(direct.status, StatusCode::BAD_REQUEST);
    assert_eq!(upstream.count(), 1);

    let url = gw.url("/v1/vardata?user_id=u1");
    for round in 1..=2 {
        let got = get_with_key(&c, &url, KEY).await;
        assert_relayed(&got, &direct);
        assert_eq!(upstream.count(), 1 + round, "a 400 is never cached");
    }
}

#[tokio::test]
async fn max_inflight_sheds_misses_with_503_but_serves_hits() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.upstream.max_inflight = 1;
    let gw = TestGateway::start(config).await;
    let c = client();
    let cached = gw.url("/v1/vardata?user_id=cached");
    let first = get_with_key(&c, &cached, KEY).await;
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(upstream.count(), 1);

    // Long enough that the permit is certainly still held while the test runs; the
    // upstream is stopped below, which ends the slow request early.
    upstream.set_delay(Duration::from_secs(30));
    let slow = {
        let (c, url) = (c.clone(), gw.url("/v1/vardata?user_id=slow"));
        tokio::spawn(async move { get_with_key(&c, &url, KEY).await })
    };
    upstream.wait_for(2).await;

    let shed = get_with_key(&c, &gw.url("/v1/vardata?user_id=other"), KEY).await;
    assert_json_error(&shed, StatusCode::SERVICE_UNAVAILABLE);
    assert!(shed.header("retry-after").is_some(), "{:?}", shed.headers);
    assert_eq!(shed.x_cache(), "MISS");
    // The passthrough shares the cap.
    let shed = send(&c, Method::GET, &gw.url("/other"), &[], "").await;
    assert_json_error(&shed, StatusCode::SERVICE_UNAVAILABLE);
    assert!(shed.header("retry-after").is_some());

    let hit = get_with_key(&c, &cached, KEY).await;
    assert_eq!(hit.status, StatusCode::OK);
    assert_eq!(hit.x_cache(), "HIT");
    assert_eq!(hit.body, first.body);
    assert_eq!(
        upstream.count(),
        2,
        "shed requests never reach the upstream"
    );

    // The upstream going away mid-request ends the slow miss with a 502, not a hang.
    upstream.stop().await;
    let got = timeout(NO_HANG, slow).await.expect("no hang").unwrap();
    assert_json_error(&got, StatusCode::BAD_GATEWAY);
}

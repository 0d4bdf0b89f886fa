//! Request limits and connection timeouts: 414/431/413 JSON errors, the slowloris guard,
//! the keep-alive idle timeout and `server.max_connections`.

mod support;

use std::time::Duration;

use evalgate::Config;
use http::{Method, StatusCode};
use support::raw_http::*;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// A config with small limits, so each can be crossed with a modest request.
fn small_limits(upstream_url: &str) -> Config {
    let mut config = config_for(upstream_url);
    config.server.max_query_bytes = 512;
    config.server.max_header_bytes = 1024;
    config.server.max_body_bytes = 100;
    config.server.max_context_bytes = 64;
    config
}

/// Asserts evalgate's own JSON error: the status, `application/json`, `{"error": "…"}`.
fn assert_json_error(got: &Got, status: StatusCode) {
    assert_eq!(got.status, status, "body: {:?}", got.body);
    assert_eq!(got.header("content-type"), Some("application/json"));
    let json = got.json();
    let message = json["error"].as_str().expect("an `error` string");
    assert!(!message.is_empty());
    assert_eq!(json.as_object().unwrap().len(), 1, "{json}");
}

/// A normal cacheable request on the same gateway still succeeds.
async fn assert_still_serves(c: &Client, gw: &TestGateway) {
    let got = get_with_key(c, &gw.url("/v1/vardata?user_id=still-ok"), KEY).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.json().get("flag-echo").is_some(), "{:?}", got.body);
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

#[tokio::test]
async fn oversized_request_target_is_414_json() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(small_limits(&upstream.url())).await;
    let c = client();
    let long = "u".repeat(600);
    let got = get_with_key(&c, &gw.url(&format!("/v1/vardata?user_id={long}")), KEY).await;
    assert_json_error(&got, StatusCode::URI_TOO_LONG);
    // The passthrough is guarded by the same limit.
    let got = send(
        &c,
        Method::GET,
        &gw.url(&format!("/other?x={long}")),
        &[],
        "",
    )
    .await;
    assert_json_error(&got, StatusCode::URI_TOO_LONG);
    assert_eq!(
        upstream.count(),
        0,
        "nothing oversized reaches the upstream"
    );
    assert_still_serves(&c, &gw).await;
}

#[tokio::test]
async fn oversized_headers_are_431_json() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(small_limits(&upstream.url())).await;
    let c = client();
    // 4 × ~500 bytes: over max_header_bytes (1024), well under hyper's own buffer.
    let big = "h".repeat(500);
    let headers: Vec<(String, String)> = (0..4)
        .map(|i| (format!("x-big-{i}"), big.clone()))
        .collect();
    let mut refs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let auth = format!("Api-Key {KEY}");
    refs.push(("authorization", &auth));
    let got = send(
        &c,
        Method::GET,
        &gw.url("/v1/vardata?user_id=u1"),
        &refs,
        "",
    )
    .await;
    assert_json_error(&got, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    // Many small headers add up the same way.
    let many: Vec<(String, String)> = (0..60)
        .map(|i| (format!("x-h{i:02}"), "v".repeat(20)))
        .collect();
    let refs: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let got = send(&c, Method::GET, &gw.url("/other"), &refs, "").await;
    assert_json_error(&got, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    assert_eq!(upstream.count(), 0);
    assert_still_serves(&c, &gw).await;
}

#[tokio::test]
async fn oversized_body_on_passthrough_is_413_json() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(small_limits(&upstream.url())).await;
    let c = client();
    let body = "b".repeat(1000);
    let got = send(
        &c,
        Method::POST,
        &gw.url("/other"),
        &[("content-type", "text/plain")],
        &body,
    )
    .await;
    assert_json_error(&got, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(got.x_cache(), "BYPASS");
    assert_eq!(upstream.count(), 0, "an oversized body is never forwarded");

    // A body within the limit is forwarded.
    let got = send(&c, Method::POST, &gw.url("/other"), &[], "small").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["body"], "small");
    assert_still_serves(&c, &gw).await;
}

#[tokio::test]
async fn oversized_context_is_414_json() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(small_limits(&upstream.url())).await;
    let c = client();
    // `{"user_id":"xxx…"}`: 100 decoded bytes, over max_context_bytes (64); the target
    // stays under max_query_bytes (512).
    let context = format!("{{\"user_id\":\"{}\"}}", "x".repeat(86));
    assert_eq!(context.len(), 100);
    let encoded = context
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace('"', "%22")
        .replace(':', "%3A");
    let url = gw.url(&format!("/v1/vardata?context={encoded}"));
    assert!(url.len() < 512);
    let got = get_with_key(&c, &url, KEY).await;
    assert_json_error(&got, StatusCode::URI_TOO_LONG);
    assert_eq!(upstream.count(), 0);

    // Just under the limit is fine.
    let context = format!("{{\"user_id\":\"{}\"}}", "x".repeat(40));
    let encoded = context
        .replace('{', "%7B")
        .replace('}', "%7D")
        .replace('"', "%22")
        .replace(':', "%3A");
    let got = get_with_key(&c, &gw.url(&format!("/v1/vardata?context={encoded}")), KEY).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_still_serves(&c, &gw).await;
}

#[tokio::test]
async fn slowloris_is_cut_off_by_the_header_read_timeout() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.server.header_read_timeout_ms = 200;
    // Far beyond NO_HANG, so only the header timeout can close the connection in time.
    config.server.keepalive_idle_timeout_ms = 600_000;
    let gw = TestGateway::start(config).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /v1/vardata HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let seen = await_close(&mut stream).await;
    let seen = String::from_utf8_lossy(&seen);
    // hyper may say 408 before closing; it must never serve the incomplete request.
    assert!(
        seen.is_empty() || seen.starts_with("HTTP/1.1 408"),
        "{seen:?}"
    );
    assert_eq!(upstream.count(), 0);

    assert_still_serves(&client(), &gw).await;
}

#[tokio::test]
async fn idle_keepalive_connection_is_closed() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.server.keepalive_idle_timeout_ms = 300;
    // hyper's header read timeout also runs while waiting for the next request; keep it
    // far beyond NO_HANG so only the idle timeout can close the connection in time.
    config.server.header_read_timeout_ms = 600_000;
    let gw = TestGateway::start(config).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 200, "{response:?}");
    let seen = await_close(&mut stream).await;
    assert!(
        seen.is_empty(),
        "nothing is sent on an idle connection: {seen:?}"
    );

    assert_still_serves(&client(), &gw).await;
}

#[tokio::test]
async fn max_connections_queues_further_clients() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.server.max_connections = 1;
    // Connection 1 must stay open for as long as the test holds it.
    config.server.keepalive_idle_timeout_ms = 600_000;
    config.server.header_read_timeout_ms = 600_000;
    let gw = TestGateway::start(config).await;

    // Connection 1: served once (so it certainly holds the only slot), then held idle.
    let mut first = TcpStream::connect(gw.addr).await.unwrap();
    first
        .write_all(b"GET /other?conn=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut first).await.status, 200);

    // Request 2 on a second connection: the kernel queues it, evalgate does not serve it.
    let url = gw.url("/other?conn=2");
    let mut second = tokio::spawn(async move { send(&client(), Method::GET, &url, &[], "").await });
    assert!(
        timeout(Duration::from_millis(300), &mut second)
            .await
            .is_err(),
        "request 2 must wait while connection 1 holds the only slot"
    );
    assert_eq!(upstream.count(), 1, "request 2 has not been forwarded");

    drop(first);
    let got = timeout(NO_HANG, second)
        .await
        .expect("request 2 is served once connection 1 closes")
        .unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["path_and_query"], "/other?conn=2");
}

#[tokio::test]
async fn a_client_that_sends_nothing_is_cut_off_by_the_header_read_timeout() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.server.header_read_timeout_ms = 200;
    // Far beyond NO_HANG, so only the header timeout can close the connection in time.
    config.server.keepalive_idle_timeout_ms = 600_000;
    let gw = TestGateway::start(config).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let seen = await_close(&mut stream).await;
    assert!(
        seen.is_empty(),
        "nothing is sent to a silent client: {seen:?}"
    );
    assert_still_serves(&client(), &gw).await;
}

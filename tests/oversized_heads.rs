//! Request heads beyond the connection's head buffer (`server.max_header_bytes +
//! server.max_query_bytes + 8 KiB`) get evalgate's JSON answer, not hyper's bare one: 414
//! when the target overflowed, 431 when the header fields did; HTTP/2 within the same bound.

mod support;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::raw_http::*;
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Far beyond the head buffer of the default limits (32 KiB + 16 KiB + 8 KiB).
const HUGE: usize = 200 * 1024;

/// Sends `request` on a new connection and reads the one answer, then the close.
async fn answer_to(gw: &TestGateway, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let response = read_response(&mut stream).await;
    let after = await_close(&mut stream).await;
    assert!(after.is_empty(), "nothing after the answer: {after:?}");
    response
}

fn huge_target_request() -> Vec<u8> {
    format!(
        "GET /v1/vardata?user_id={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "u".repeat(HUGE)
    )
    .into_bytes()
}

#[tokio::test]
async fn a_target_beyond_the_head_buffer_is_414_json() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let response = answer_to(&gw, &huge_target_request()).await;
    response.assert_json_error(414);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(
        response.json()["error"]
            .as_str()
            .unwrap()
            .contains("max_query_bytes")
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_header_value_beyond_the_head_buffer_is_431_json() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let request = format!(
        "GET /v1/vardata?user_id=u HTTP/1.1\r\nHost: x\r\nx-big: {}\r\n\r\n",
        "v".repeat(HUGE)
    );
    let response = answer_to(&gw, request.as_bytes()).await;
    response.assert_json_error(431);
    assert!(
        response.json()["error"]
            .as_str()
            .unwrap()
            .contains("max_header_bytes")
    );
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn many_header_fields_beyond_the_head_buffer_are_431_json() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    // 90 fields of 1,000 bytes: no single line is long, the head is.
    let mut request = "GET /other HTTP/1.1\r\nHost: x\r\n".to_string();
    for i in 0..90 {
        request.push_str(&format!("x-h{i:02}: {}\r\n", "v".repeat(1000)));
    }
    request.push_str("\r\n");
    let response = answer_to(&gw, request.as_bytes()).await;
    response.assert_json_error(431);
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_target_just_over_max_query_bytes_is_414_json() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    // Within the head buffer: the gateway's own check answers, and the connection stays.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let request = format!(
        "GET /other?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "q".repeat(16 * 1024)
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    read_response(&mut stream).await.assert_json_error(414);
    stream
        .write_all(b"GET /other?next HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_response(&mut stream).await.status, 200);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn an_oversized_target_after_answered_requests_is_414_json() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    // Pipelined: two requests (one with a body) and the oversized one, in one write.
    let mut request = b"GET /other?first HTTP/1.1\r\nHost: x\r\n\r\n\
        POST /other?second HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
        .to_vec();
    request.extend(huge_target_request());
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let responses = parse_responses(&await_close(&mut stream).await);
    assert_eq!(responses.len(), 3, "{responses:?}");
    assert_eq!(responses[0].json()["path_and_query"], "/other?first");
    assert_eq!(responses[1].json()["body"], "body");
    responses[2].assert_json_error(414);
    assert_eq!(upstream.count(), 2);
}

/// One HTTP/2 GET of `path` on `sender`: status and body.
async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
    gw: &TestGateway,
    path: &str,
) -> (StatusCode, Bytes) {
    sender.ready().await.unwrap();
    let request = Request::get(gw.url(path))
        .header("authorization", format!("Api-Key {KEY}"))
        .body(Empty::new())
        .unwrap();
    let response = timeout(NO_HANG, sender.send_request(request))
        .await
        .expect("answered")
        .expect("a response, not a reset");
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

#[tokio::test]
async fn http2_targets_within_the_head_buffer_get_json_and_beyond_it_a_bare_431() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);

    // 40 KiB: over max_query_bytes and over the old h2 bound (max_header_bytes + 1 KiB).
    let (status, body) = h2_get(
        &mut sender,
        &gw,
        &format!("/other?q={}", "q".repeat(40 * 1024)),
    )
    .await;
    assert_eq!(status, StatusCode::URI_TOO_LONG);
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert!(json["error"].as_str().unwrap().contains("max_query_bytes"));

    // Beyond the bound (here 62 KiB, near the most an `http::Uri` holds) the h2 library
    // answers by itself: 431 without a body.
    let path = format!("/other?q={}", "q".repeat(62 * 1024));
    let (status, body) = h2_get(&mut sender, &gw, &path).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(body.is_empty(), "{body:?}");

    // Either way the connection goes on.
    let (status, _) = h2_get(&mut sender, &gw, "/other?after").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(upstream.count(), 1);
    conn.abort();
}

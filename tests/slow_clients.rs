//! Slow request bodies (`server.body_read_timeout_ms`): a client that announces a body and
//! sends it slowly, or never, gets `408` JSON and loses its connection slot, on HTTP/1.1
//! and HTTP/2; a request answered without its body holds no slot either.

mod support;

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use evalgate::Config;
use http::{Method, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::raw_http::*;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The body deadline of these tests; every other timeout is far beyond [`NO_HANG`], so only
/// the body deadline can free a connection in time.
const BODY_TIMEOUT_MS: u64 = 300;

fn slow_body_config(upstream_url: &str) -> Config {
    let mut config = config_for(upstream_url);
    config.server.body_read_timeout_ms = BODY_TIMEOUT_MS;
    config.server.header_read_timeout_ms = 600_000;
    config.server.keepalive_idle_timeout_ms = 600_000;
    config
}

/// A complete head announcing a 60,000-byte body.
const STALLED_HEAD: &[u8] = b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n";

/// Asserts the slow-body answer on HTTP/1.1: 408 JSON saying the connection closes, and
/// the server then closes it.
async fn assert_408_then_closed(stream: &mut TcpStream) {
    let response = read_response(stream).await;
    response.assert_json_error(408);
    assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    let after = await_close(stream).await;
    assert!(after.is_empty(), "nothing after the 408: {after:?}");
}

#[tokio::test]
async fn a_body_that_never_comes_gets_408_and_the_connection_closes() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(slow_body_config(&upstream.url())).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(STALLED_HEAD).await.unwrap();
    assert_408_then_closed(&mut stream).await;
    assert_eq!(
        upstream.count(),
        0,
        "an incomplete request is never forwarded"
    );
}

#[tokio::test]
async fn stalled_bodies_do_not_hold_every_connection_slot() {
    let upstream = FakeUpstream::start().await;
    let mut config = slow_body_config(&upstream.url());
    config.server.max_connections = 4;
    let gw = TestGateway::start(config).await;

    // Four clients each announce a body and send none of it. `Expect: 100-continue` makes
    // evalgate say when it starts reading the body, so each one certainly holds a slot.
    let mut stalled = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        stream
            .write_all(
                b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\
                  Expect: 100-continue\r\n\r\n",
            )
            .await
            .unwrap();
        let mut continue_line = [0u8; 25];
        timeout(NO_HANG, stream.read_exact(&mut continue_line))
            .await
            .expect("evalgate starts reading the body")
            .unwrap();
        assert_eq!(&continue_line, b"HTTP/1.1 100 Continue\r\n\r\n");
        stalled.push(stream);
    }

    // A fifth client waits in the backlog until a stalled one is cut off, then is served.
    let url = gw.url("/other?fifth");
    let got = timeout(NO_HANG, async move {
        send(&client(), Method::GET, &url, &[], "").await
    })
    .await
    .expect("a new client is answered while four bodies are stalled");
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["path_and_query"], "/other?fifth");

    for stream in &mut stalled {
        assert_408_then_closed(stream).await;
    }
    assert_eq!(upstream.count(), 1, "only the fifth request was forwarded");
}

#[tokio::test]
async fn a_dribbled_body_gets_408_at_the_deadline() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(slow_body_config(&upstream.url())).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(STALLED_HEAD).await.unwrap();
    // One byte per pause, each pause a sixth of the deadline: every byte is on time, the
    // whole body never is. Bounded: 200 bytes, far fewer than the 60,000 announced.
    let pause = Duration::from_millis(BODY_TIMEOUT_MS / 6);
    let mut answered = false;
    for _ in 0..200 {
        if stream.write_all(b"x").await.is_err() {
            answered = true;
            break;
        }
        let mut peek = [0u8; 1];
        if let Ok(readable) = timeout(pause, stream.peek(&mut peek)).await {
            readable.unwrap();
            answered = true;
            break;
        }
    }
    assert!(answered, "evalgate answered a dribbling client");
    assert_408_then_closed(&mut stream).await;
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn a_body_sent_on_time_is_forwarded() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(slow_body_config(&upstream.url())).await;

    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream
        .write_all(b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.json()["body"], "hello");
    // The connection stays usable.
    stream
        .write_all(b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nbye")
        .await
        .unwrap();
    let response = read_response(&mut stream).await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.json()["body"], "bye");
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn an_answered_request_with_an_unsent_body_does_not_hold_the_connection() {
    let upstream = FakeUpstream::start().await;
    let mut config = slow_body_config(&upstream.url());
    config.server.max_query_bytes = 256;
    // Only the behaviour of an answered request can close the connection in time.
    config.server.body_read_timeout_ms = 600_000;
    let gw = TestGateway::start(config).await;

    // Rejected by its target before its body is read; the body never comes.
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "POST /other?{} HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n",
        "q".repeat(300)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let response = read_response(&mut stream).await;
    response.assert_json_error(414);
    // hyper does not wait for a body nobody reads: the connection closes.
    let after = await_close(&mut stream).await;
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(upstream.count(), 0);
}

/// A request body that never sends anything and never ends.
struct Stalled;

impl Body for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Pending
    }
}

type H2Body = BoxBody<Bytes, Infallible>;

fn h2_request(gw: &TestGateway, path: &str, body: H2Body) -> Request<H2Body> {
    Request::post(gw.url(path)).body(body).unwrap()
}

/// Collects a response's status and body.
async fn h2_answer(
    response: hyper::Result<http::Response<hyper::body::Incoming>>,
) -> (StatusCode, serde_json::Value) {
    let (parts, body) = response.expect("an answer").into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, serde_json::from_slice(&body).expect("JSON"))
}

#[tokio::test]
async fn http2_a_stalled_stream_gets_408_and_the_connection_goes_on() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(slow_body_config(&upstream.url())).await;

    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);

    let stalled = sender.send_request(h2_request(&gw, "/other?stalled", Stalled.boxed()));
    let stalled = tokio::spawn(stalled);
    // Another stream on the same connection is served meanwhile.
    sender.ready().await.unwrap();
    let other = sender.send_request(h2_request(&gw, "/other?b", Full::from("b").boxed()));
    let (status, json) = timeout(NO_HANG, h2_answer(other.await)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["body"], "b");

    let (status, json) = timeout(NO_HANG, async { h2_answer(stalled.await.unwrap()).await })
        .await
        .expect("the stalled stream is answered");
    assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{json}");
    assert!(json["error"].as_str().is_some(), "{json}");

    // The 408 ended one stream, not the connection.
    sender.ready().await.unwrap();
    let after = sender.send_request(h2_request(&gw, "/other?after", Full::from("c").boxed()));
    let (status, json) = timeout(NO_HANG, h2_answer(after.await)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["body"], "c");
    assert_eq!(
        upstream.count(),
        2,
        "the stalled request was never forwarded"
    );
    conn.abort();
}

/// The deadline belongs to reading the body, so the in-process entry point has it too.
#[tokio::test(start_paused = true)]
async fn in_process_handle_answers_a_stalled_body_with_408() {
    let upstream = FakeUpstream::start().await;
    let gateway = evalgate::Gateway::new(slow_body_config(&upstream.url()).validate().unwrap())
        .expect("gateway");

    for (version, connection) in [
        (http::Version::HTTP_11, Some("close")),
        (http::Version::HTTP_2, None),
    ] {
        let request = Request::post("/other")
            .version(version)
            .body(Stalled)
            .unwrap();
        // Paused clock: the deadline passes as soon as nothing else can run; the bound
        // fails the test when no deadline applies.
        let response = timeout(Duration::from_secs(60), gateway.handle(request))
            .await
            .expect("answered at the body deadline");
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(
            response
                .headers()
                .get("connection")
                .map(|v| v.to_str().unwrap()),
            connection,
            "{version:?}"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(json["error"].as_str().is_some(), "{json}");
    }
    assert_eq!(upstream.count(), 0);
}

/// A client that stops reading its answer (slow read): once the connection is idle it is
/// asked to close, and past `server.shutdown_timeout_ms` of draining it is dropped, so the
/// client holds its connection slot no longer than that. Here the only slot: the next
/// client is served once it is freed.
#[tokio::test]
async fn a_client_that_stops_reading_its_answer_loses_its_slot() {
    let upstream = FakeUpstream::start().await;
    // An answer far larger than the two sockets' buffers, so writing it blocks.
    let big: &'static str = Box::leak("x".repeat(32 << 20).into_boxed_str());
    upstream.update(|s| s.raw_body = Some(big));
    let mut config = config_for(&upstream.url());
    config.server.max_connections = 1;
    config.server.header_read_timeout_ms = 200;
    config.server.keepalive_idle_timeout_ms = 200;
    config.server.shutdown_timeout_ms = 300;
    config.upstream.max_response_bytes = 64 << 20;
    let gw = TestGateway::start(config).await;

    let mut reader = TcpStream::connect(gw.addr).await.unwrap();
    reader
        .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    upstream.wait_for(1).await;
    upstream.update(|s| s.raw_body = None);

    // Waits in the accept queue until the slow reader's connection is dropped.
    let got = timeout(
        NO_HANG,
        get_with_key(&client(), &gw.url("/v1/vardata?user_id=next"), KEY),
    )
    .await
    .expect("the slow reader let go of the only connection slot");
    assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
    drop(reader);
}

/// The admin listener holds its request bodies to the same deadline.
#[tokio::test]
async fn an_admin_body_that_never_comes_gets_408() {
    let upstream = FakeUpstream::start().await;
    let gateway =
        evalgate::Gateway::new(slow_body_config(&upstream.url()).validate().unwrap()).unwrap();
    let gw = TestGateway::start_with_admin(gateway).await;
    let admin = gw.admin_url("/");
    let addr = admin
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /admin/purge HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        .await
        .unwrap();
    read_response(&mut stream).await.assert_json_error(408);
}

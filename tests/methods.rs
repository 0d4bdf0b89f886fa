//! `CONNECT` and `TRACE` mean nothing to an evaluation API: evalgate answers them 405 JSON
//! itself, over HTTP/1.1 and HTTP/2, never forwards them, and the connection keeps serving.

mod support;

use std::time::Duration;

use bytes::Bytes;
use evalgate::Gateway;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Generous bound for "the server answers or closes": proves no hang, not speed.
const NO_HANG: Duration = Duration::from_secs(10);

async fn start(upstream: &FakeUpstream) -> (Gateway, TestGateway) {
    let config = config_for(&upstream.url()).validate().unwrap();
    let gateway = Gateway::new(config).unwrap();
    let gw = TestGateway::start_gateway(gateway.clone()).await;
    (gateway, gw)
}

/// Reads one response (head and `Content-Length` body) off a raw connection; `None` when
/// the server closed the connection before sending anything.
async fn read_response(stream: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read response head");
        if n == 0 {
            assert!(buf.is_empty(), "closed mid-head: {buf:?}");
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .expect("content-length");
    while buf.len() < head_end + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.expect("read response body");
        assert!(n > 0, "connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
    Some((head, body))
}

/// Asserts evalgate's own 405: JSON error and `Allow`.
fn assert_405(head: &str, body: &str) {
    assert!(head.starts_with("http/1.1 405 "), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(
        head.contains("allow: get, head, post, put, patch, delete, options"),
        "{head}"
    );
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert!(json["error"].is_string(), "{body}");
}

/// Sends `request` on a fresh connection, expects the 405, then asks for `/other` on the
/// same connection: the connection stays usable (the method opened no tunnel).
async fn refused_then_next_request_served(gw: &TestGateway, request: &str) {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let (head, body) = timeout(NO_HANG, read_response(&mut stream))
        .await
        .expect("answered")
        .expect("a response, not a close");
    assert_405(&head, &body);
    stream
        .write_all(b"GET /other?next=1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = timeout(NO_HANG, read_response(&mut stream))
        .await
        .expect("answered")
        .expect("the keep-alive connection serves the next request");
    assert!(head.starts_with("http/1.1 200 "), "{head}");
    assert!(body.contains("/other?next=1"), "{body}");
}

#[tokio::test]
async fn connect_and_trace_get_405_and_never_reach_the_upstream() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(&upstream).await;

    refused_then_next_request_served(
        &gw,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    )
    .await;
    refused_then_next_request_served(
        &gw,
        &format!(
            "TRACE /v1/vardata?user_id=u HTTP/1.1\r\nHost: x\r\nAuthorization: Api-Key {KEY}\r\n\r\n"
        ),
    )
    .await;
    // Only the two follow-up GETs reached the upstream.
    assert_eq!(upstream.count(), 2);
    assert!(
        upstream
            .requests()
            .iter()
            .all(|r| r.method == Method::GET && r.path_and_query == "/other?next=1")
    );

    // Counted as rejected before routing: `NONE`, under the path's route family (CONNECT
    // has no path: `other`).
    let text = gateway.metrics().encode();
    for route in ["other", "v1_vardata"] {
        let line = format!(r#"evalgate_requests_total{{route="{route}",cache="NONE"}} 1"#);
        assert!(text.contains(&line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn h2_connect_and_trace_get_405_and_the_connection_keeps_serving() {
    let upstream = FakeUpstream::start().await;
    let (_gateway, gw) = start(&upstream).await;
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let driver = tokio::spawn(conn);

    // A plain HTTP/2 CONNECT (`:method` and `:authority` only) reaches evalgate: 405.
    let connect = Request::builder()
        .method(Method::CONNECT)
        .uri("example.com:443")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = timeout(NO_HANG, sender.send_request(connect))
        .await
        .expect("answered")
        .unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()["content-type"], "application/json");
    assert!(res.headers().contains_key("allow"));
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(json["error"].is_string());

    // TRACE over HTTP/2 too, and the connection keeps serving.
    let trace = Request::builder()
        .method(Method::TRACE)
        .uri(gw.url("/v1/vardata?user_id=u"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(trace).await.unwrap();
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    let get = Request::builder()
        .uri(gw.url("/other?h2=1"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let res = sender.send_request(get).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(upstream.count(), 1);
    drop(sender);
    driver.abort();
}

//! The pipeline against a raw TCP upstream whose every byte the test controls: batches,
//! answers matched to requests in order, closes and garbage in the middle of a batch,
//! retries, limits and timeouts.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::future::join_all;
use hyper_rustls::HttpsConnectorBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use http::Request;

/// Generous bound proving "does not hang", never a speed requirement.
const BOUND: Duration = Duration::from_secs(10);

/// A raw upstream: `serve(stream, n)` runs for the n-th connection (from 0).
struct Raw {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

async fn raw<F, Fut>(serve: F) -> Raw
where
    F: Fn(TcpStream, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, n));
        }
    });
    Raw { addr, accepted }
}

fn pipeline(addr: SocketAddr, depth: usize) -> Pipeline {
    pipeline_with(addr, depth, Duration::from_secs(5), Duration::from_secs(30))
}

fn pipeline_with(
    addr: SocketAddr,
    depth: usize,
    answer_timeout: Duration,
    idle_timeout: Duration,
) -> Pipeline {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Pipeline::new(
        https,
        Settings {
            origin: format!("http://{addr}/").parse().unwrap(),
            depth,
            max_body: 1024 * 1024,
            max_idle: 16,
            idle_timeout,
            connect_timeout: Duration::from_secs(5),
            answer_timeout,
        },
    )
}

fn get(path: &str) -> Request<Bytes> {
    Request::get(path).body(Bytes::new()).unwrap()
}

/// Reads request heads off `stream` until `n` are complete; their request targets.
async fn read_heads(stream: &mut TcpStream, n: usize) -> Vec<String> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while data.windows(4).filter(|w| w == b"\r\n\r\n").count() < n {
        let got = stream.read(&mut buf).await.unwrap();
        assert!(got > 0, "the client closed before sending {n} requests");
        data.extend_from_slice(&buf[..got]);
    }
    String::from_utf8(data)
        .unwrap()
        .split("\r\n\r\n")
        .filter(|h| !h.is_empty())
        .map(|h| h.split(' ').nth(1).unwrap().to_string())
        .collect()
}

/// A 200 whose body is `body`.
fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers every request with its own target as the body, as they come, forever.
async fn echo(mut stream: TcpStream, _: usize) {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        while let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(data.drain(..end + 4).collect()).unwrap();
            let target = head.split(' ').nth(1).unwrap().to_string();
            let body = if head.starts_with("HEAD ") {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
                    target.len()
                )
            } else {
                ok(&target)
            };
            if stream.write_all(body.as_bytes()).await.is_err() {
                return;
            }
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends `request` the way the gateway does: its head, encoded once.
async fn send(p: &Pipeline, request: &Request<Bytes>) -> Result<UpstreamResponse, UpstreamError> {
    let mut head = Vec::new();
    super::super::codec::encode_request(request, p.host(), &mut head);
    p.exchange(Bytes::from(head), request.method().clone())
        .await
}

async fn exchange_all(
    p: &Pipeline,
    paths: &[String],
) -> Vec<Result<UpstreamResponse, UpstreamError>> {
    let requests: Vec<_> = paths.iter().map(|p| get(p)).collect();
    let all = join_all(requests.iter().map(|r| send(p, r)));
    tokio::time::timeout(BOUND, all).await.expect("answered")
}

/// Sends `paths` together and checks that each got the answer echoing its own target.
async fn each_gets_its_own_answer(p: &Pipeline, paths: &[String]) {
    let results = exchange_all(p, paths).await;
    for (path, result) in paths.iter().zip(&results) {
        assert_eq!(body(result), path);
    }
}

/// A 200 whose body is `body`, closing the connection.
fn ok_closing(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn paths(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("/v1/vardata?user_id=u{i}"))
        .collect()
}

fn body(result: &Result<UpstreamResponse, UpstreamError>) -> &str {
    std::str::from_utf8(&result.as_ref().expect("answered").body).unwrap()
}

#[tokio::test]
async fn fills_started_together_go_out_together_and_each_gets_its_own_answer() {
    let up = raw(|mut s, _| async move {
        // Answers only once all five are in: without pipelining this would never happen.
        let targets = read_heads(&mut s, 5).await;
        let answers: String = targets.iter().map(|t| ok(t)).collect();
        s.write_all(answers.as_bytes()).await.unwrap();
        let _ = s.read(&mut [0u8; 16]).await;
    })
    .await;
    let p = pipeline(up.addr, 8);
    let paths = paths(5);
    each_gets_its_own_answer(&p, &paths).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
    assert_eq!(p.lanes(), 1, "the lane stays open for the next batch");
}

#[tokio::test]
async fn a_batch_holds_at_most_the_depth() {
    let up = raw(echo).await;
    let p = pipeline(up.addr, 2);
    let paths = paths(5);
    each_gets_its_own_answer(&p, &paths).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 3, "2 + 2 + 1");
}

#[tokio::test]
async fn a_connection_close_in_the_middle_of_a_batch_sends_the_rest_again() {
    let up = raw(|mut s, n| async move {
        if n == 0 {
            let t = read_heads(&mut s, 4).await;
            s.write_all(format!("{}{}", ok(&t[0]), ok_closing(&t[1])).as_bytes())
                .await
                .unwrap();
        } else {
            echo(s, n).await;
        }
    })
    .await;
    let p = pipeline(up.addr, 8);
    let paths = paths(4);
    each_gets_its_own_answer(&p, &paths).await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn requests_never_answered_go_once_more_then_fail() {
    let up = raw(|mut s, n| async move {
        // All three on the first connection, one on each after; then close without a word.
        read_heads(&mut s, if n == 0 { 3 } else { 1 }).await;
    })
    .await;
    let p = pipeline(up.addr, 8);
    let results = exchange_all(&p, &paths(3)).await;
    for result in &results {
        assert!(
            matches!(result, Err(UpstreamError::Protocol(_))),
            "{result:?}"
        );
    }
    // A fresh connection reset with requests unanswered: the upstream does not
    // pipeline, so the one more attempt of each goes on a lane of its own.
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1 + 3);
}

#[tokio::test]
async fn garbage_fails_the_request_it_answers_and_the_ones_after_go_again() {
    let up = raw(|mut s, n| async move {
        if n == 0 {
            let t = read_heads(&mut s, 3).await;
            let wire = format!("{}HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", ok(&t[0]));
            s.write_all(wire.as_bytes()).await.unwrap();
            let _ = s.read(&mut [0u8; 16]).await;
        } else {
            echo(s, n).await;
        }
    })
    .await;
    let p = pipeline(up.addr, 8);
    let paths = paths(3);
    let results = exchange_all(&p, &paths).await;
    assert_eq!(body(&results[0]), paths[0]);
    assert!(matches!(results[1], Err(UpstreamError::Protocol(_))));
    assert_eq!(body(&results[2]), paths[2]);
}

#[tokio::test]
async fn head_answers_have_no_body_in_a_batch() {
    let up = raw(echo).await;
    let p = pipeline(up.addr, 8);
    let head = Request::head("/v1/vardata?user_id=h")
        .body(Bytes::new())
        .unwrap();
    let get = get("/v1/vardata?user_id=g");
    let (h, g) = tokio::time::timeout(BOUND, async {
        tokio::join!(send(&p, &head), send(&p, &get))
    })
    .await
    .unwrap();
    let h = h.unwrap();
    assert!(h.body.is_empty());
    assert_eq!(
        h.headers["content-length"], "21",
        "the GET body it would have"
    );
    assert_eq!(body(&g), "/v1/vardata?user_id=g");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_batch_not_answered_in_time_fails_with_a_timeout_and_closes_its_lane() {
    let up = raw(|mut s, _| async move {
        read_heads(&mut s, 1).await;
        let _ = s.read(&mut [0u8; 16]).await; // never answers; waits for the close
    })
    .await;
    let p = pipeline_with(
        up.addr,
        8,
        Duration::from_millis(100),
        Duration::from_secs(30),
    );
    let results = exchange_all(&p, &paths(1)).await;
    assert!(matches!(results[0], Err(UpstreamError::Timeout)));
    assert_eq!(p.lanes(), 0);
}

#[tokio::test]
async fn an_unreachable_upstream_fails_every_request_with_a_connect_error() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap(); // dropped: nothing listens there now
    let p = pipeline(addr, 8);
    for result in exchange_all(&p, &paths(3)).await {
        assert!(
            matches!(result, Err(UpstreamError::Connect(_))),
            "{result:?}"
        );
    }
    assert_eq!(p.lanes(), 0);
}

#[tokio::test]
async fn a_lane_the_upstream_closed_while_idle_is_replaced_without_an_error() {
    let (closed_tx, closed) = oneshot::channel::<()>();
    let closed_tx = Mutex::new(Some(closed_tx));
    let up = raw(move |mut s, n| {
        let tx = closed_tx.lock().unwrap().take();
        async move {
            if n == 0 {
                let t = read_heads(&mut s, 1).await;
                s.write_all(ok(&t[0]).as_bytes()).await.unwrap();
                drop(s); // an upstream closing a keep-alive connection
                let _ = tx.map(|tx| tx.send(()));
            } else {
                echo(s, n).await;
            }
        }
    })
    .await;
    let p = pipeline(up.addr, 8);
    assert_eq!(body(&exchange_all(&p, &paths(1)).await[0]), paths(1)[0]);
    closed.await.unwrap();
    let again = exchange_all(&p, &["/again".to_string()]).await;
    assert_eq!(body(&again[0]), "/again");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn idle_lanes_close_after_the_idle_timeout() {
    let (eof_tx, eof) = oneshot::channel::<()>();
    let eof_tx = Mutex::new(Some(eof_tx));
    let up = raw(move |mut s, _| {
        let tx = eof_tx.lock().unwrap().take();
        async move {
            let t = read_heads(&mut s, 1).await;
            s.write_all(ok(&t[0]).as_bytes()).await.unwrap();
            assert_eq!(
                s.read(&mut [0u8; 16]).await.unwrap(),
                0,
                "closed, not written to"
            );
            let _ = tx.map(|tx| tx.send(()));
        }
    })
    .await;
    let p = pipeline_with(
        up.addr,
        8,
        Duration::from_secs(5),
        Duration::from_millis(100),
    );
    exchange_all(&p, &paths(1)).await[0].as_ref().unwrap();
    tokio::time::timeout(BOUND, eof).await.unwrap().unwrap();
    assert_eq!(
        p.lanes(),
        0,
        "out of the scheduler before the socket closed"
    );
}

#[tokio::test]
async fn an_upstream_that_closes_after_every_answer_gets_one_request_per_lane() {
    // An HTTP/1.0-style server: one answer per connection, then it closes.
    let up = raw(|mut s, _| async move {
        let t = read_heads(&mut s, 1).await;
        s.write_all(ok_closing(&t[0]).as_bytes()).await.unwrap();
    })
    .await;
    let p = pipeline(up.addr, 8);
    let paths = paths(4);
    let results = exchange_all(&p, &paths).await;
    for (path, result) in paths.iter().zip(&results) {
        assert_eq!(
            body(result),
            path,
            "never a 502: the rest were not processed"
        );
    }
    assert_eq!(up.accepted.load(Ordering::SeqCst), 4);
    // Now it knows: later fills go one per lane from the start.
    let results = exchange_all(&p, &paths).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(up.accepted.load(Ordering::SeqCst), 8);
}

#[tokio::test]
async fn bytes_nobody_asked_for_close_the_lane_and_never_answer_a_request() {
    let up = raw(|mut s, n| async move {
        if n == 0 {
            // An answer, then a 408 of the upstream's own (its idle timer), on an open
            // connection.
            let t = read_heads(&mut s, 1).await;
            let wire = format!(
                "{}HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\n\r\n",
                ok(&t[0])
            );
            s.write_all(wire.as_bytes()).await.unwrap();
            let _ = s.read(&mut [0u8; 16]).await;
        } else {
            echo(s, n).await;
        }
    })
    .await;
    let p = pipeline(up.addr, 8);
    assert_eq!(body(&exchange_all(&p, &paths(1)).await[0]), paths(1)[0]);
    let again = exchange_all(&p, &["/again".to_string()]).await;
    assert_eq!(body(&again[0]), "/again", "not the 408");
    assert_eq!(up.accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_over_the_limit_is_too_large() {
    let up = raw(|mut s, _| async move {
        read_heads(&mut s, 1).await;
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            2 * 1024 * 1024
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let _ = s.read(&mut [0u8; 16]).await;
    })
    .await;
    let p = pipeline(up.addr, 8);
    let results = exchange_all(&p, &paths(1)).await;
    assert!(
        matches!(results[0], Err(UpstreamError::TooLarge)),
        "{:?}",
        results[0]
    );
}

mod cancelled;

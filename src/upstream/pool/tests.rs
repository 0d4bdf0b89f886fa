//! A connection the upstream closes between its checkout and its request.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::*;

/// Generous bound proving "does not hang", never a speed requirement.
const BOUND: Duration = Duration::from_secs(10);

fn pool_for(addr: std::net::SocketAddr) -> Pool {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let origin: Uri = format!("http://{addr}").parse().unwrap();
    Pool::new(https, &origin, 4, Duration::from_secs(30))
}

fn get() -> Request<Full<Bytes>> {
    Request::get("/")
        .header(header::HOST, "upstream")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn a_request_on_a_connection_closed_after_checkout_comes_back_unsent() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (close, closing) = oneshot::channel::<()>();
    let (closed, is_closed) = oneshot::channel::<()>();
    // Answers one request, then closes the idle connection when told (like an upstream
    // whose keep-alive timeout is shorter than ours).
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = socket.read(&mut buf).await.unwrap();
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
        let _ = closing.await;
        drop(socket);
        let _ = closed.send(());
    });
    let pool = pool_for(addr);
    let request = Request::get(format!("http://{addr}/"))
        .body(Bytes::new())
        .unwrap();
    let first = pool.exchange(request, 1024).await.expect("answered");
    assert_eq!(first.body, "ok");
    // Checked out while still open...
    let mut conn = pool.connection().await.expect("the parked connection");
    // ...then closed before the request goes out.
    close.send(()).unwrap();
    is_closed.await.unwrap();
    let outcome = tokio::time::timeout(BOUND, conn.exchange(get(), 1024))
        .await
        .expect("a closed connection fails the request instead of holding it");
    assert!(
        matches!(outcome, Err(Failure::Unsent(..))),
        "the request is handed back to go on another connection"
    );
}

#[test]
fn the_host_header_names_a_port_only_when_it_is_not_the_default() {
    let host = |url: &str| host_header(&url.parse().unwrap());
    assert_eq!(host("http://upstream.example"), "upstream.example");
    assert_eq!(host("http://upstream.example:80"), "upstream.example");
    assert_eq!(
        host("http://upstream.example:8080"),
        "upstream.example:8080"
    );
    assert_eq!(host("https://upstream.example:443"), "upstream.example");
    assert_eq!(
        host("https://user@upstream.example:8443"),
        "upstream.example:8443"
    );
    assert_eq!(host("http://127.0.0.1:18080"), "127.0.0.1:18080");
    assert_eq!(host("https://[::1]:8443"), "[::1]:8443");
}

//! Connections on the HTTPS listener from accept to close: the handshake spends the first
//! request's time (`server.header_read_timeout_ms`, counted from the accept), a connection
//! closed before its ClientHello counts as `closed`, a stalled handshake holds up nobody
//! else, and a request in flight over TLS finishes when the gateway drains.

mod support;

use std::time::Duration;

use support::certs::*;
use support::https::*;
use support::redis::process::TempDir;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};

const VARDATA: &str = "/v1/vardata?user_id=u1&flag_key=a";

/// A client that opens a connection and never sends its ClientHello is closed after
/// `server.header_read_timeout_ms`, like one that never sends its request head.
#[tokio::test]
async fn stalled_handshake_is_closed_after_the_header_timeout() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let issued = ca.issue(1);
    let upstream = FakeUpstream::start().await;
    let mut config = tls_config(&upstream.url(), &issued);
    config.server.header_read_timeout_ms = 200;
    // Long idle timeout: only the handshake bound can close the connection.
    config.server.keepalive_idle_timeout_ms = 3_600_000;
    let gw = TlsGateway::start(config, false).await;
    let mut stalled = TcpStream::connect(gw.tls).await.unwrap();
    let mut buf = [0u8; 64];
    let read = timeout(NO_HANG, stalled.read(&mut buf))
        .await
        .expect("the gateway closes a connection whose handshake stalls");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert_eq!(gw.handshakes(), [0, 0, 1, 0]);
    gw.shutdown().await;
}

/// The handshake counts against the first request's time: a client that finishes it late
/// and then sends nothing is closed `server.header_read_timeout_ms` after it connected,
/// not that long after its handshake (which held the slot up to twice as long).
#[tokio::test]
async fn a_late_handshake_leaves_only_the_rest_of_the_first_request_time() {
    const FIRST: Duration = Duration::from_secs(3);
    // The handshake starts this late: inside FIRST with a second to spare, and far enough
    // in that "FIRST after the handshake" is a second past the bound asserted below.
    const LATE: Duration = Duration::from_secs(2);
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let issued = ca.issue(1);
    let upstream = FakeUpstream::start().await;
    let mut config = tls_config(&upstream.url(), &issued);
    config.server.header_read_timeout_ms = FIRST.as_millis() as u64;
    config.server.keepalive_idle_timeout_ms = 3_600_000;
    let gw = TlsGateway::start(config, false).await;
    let options = ClientOptions {
        alpn: &["http/1.1"],
        ..ClientOptions::browser(&[&ca.cert])
    };

    let connected = Instant::now();
    let tcp = TcpStream::connect(gw.tls).await.unwrap();
    // The delay under test, not a wait for an event.
    tokio::time::sleep(LATE).await;
    let mut tls = tls_handshake(tcp, &options).await;
    let mut buf = [0u8; 64];
    let read = timeout(NO_HANG, tls.read(&mut buf))
        .await
        .expect("the gateway closes the idle connection");
    let closed_after = connected.elapsed();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(closed_after >= FIRST, "closed early: {closed_after:?}");
    // Without the handshake counted: LATE + FIRST = 5 s.
    assert!(
        closed_after < FIRST + Duration::from_secs(1),
        "closed {closed_after:?} after connecting: the handshake was not counted"
    );
    assert_eq!(gw.handshakes(), [1, 0, 0, 0]);
    gw.shutdown().await;
}

/// A connection closed before any TLS byte (a load balancer's TCP health check, a scanner)
/// counts as `closed`, not as a failed handshake; bytes that are no ClientHello do.
#[tokio::test]
async fn a_connection_closed_before_its_client_hello_counts_as_closed() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let issued = ca.issue(1);
    let upstream = FakeUpstream::start().await;
    let gw = TlsGateway::start(tls_config(&upstream.url(), &issued), false).await;

    drop(TcpStream::connect(gw.tls).await.unwrap());
    gw.wait_handshakes([0, 0, 0, 1]).await;

    let mut plaintext = TcpStream::connect(gw.tls).await.unwrap();
    plaintext
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    gw.wait_handshakes([0, 1, 0, 1]).await;
    assert_eq!(gw.handshakes(), [0, 1, 0, 1]);
    gw.shutdown().await;
}

/// A client stalled in its handshake (connected, no ClientHello) and one stalled before
/// its request head on the cleartext listener hold up nobody: requests on both listeners
/// are answered meanwhile.
#[tokio::test]
async fn a_stalled_handshake_does_not_delay_other_clients() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let issued = ca.issue(1);
    let upstream = FakeUpstream::start().await;
    let mut config = tls_config(&upstream.url(), &issued);
    // Nothing times the stalled clients out while the test runs.
    config.server.header_read_timeout_ms = 3_600_000;
    config.server.keepalive_idle_timeout_ms = 3_600_000;
    let gw = TlsGateway::start(config, true).await;
    let plain = gw.plain.unwrap();
    let _stalled_tls = TcpStream::connect(gw.tls).await.unwrap();
    let _stalled_plain = TcpStream::connect(plain).await.unwrap();

    let served = async {
        let mut conn = TlsConn::open(gw.tls, &ClientOptions::browser(&[&ca.cert])).await;
        let (over_tls, _) = conn.get(VARDATA).await;
        let cleartext = get_with_key(&client(), &format!("http://{plain}{VARDATA}"), KEY).await;
        (over_tls, cleartext)
    };
    let (over_tls, cleartext) = timeout(NO_HANG, served)
        .await
        .expect("both listeners answer while a handshake stalls");
    assert_eq!(over_tls.status, 200);
    assert_eq!(over_tls.x_cache(), "MISS");
    assert_eq!(cleartext.status, 200);
    assert_eq!(cleartext.x_cache(), "HIT");
    // The stalled handshake is still in progress: only the real client's was counted.
    assert_eq!(gw.handshakes(), [1, 0, 0, 0]);
    gw.shutdown().await;
}

/// Shutdown with a request in flight over TLS (HTTP/1.1 and h2): the request gets its
/// answer, then the gateway closes the connection, and the drain ends.
#[tokio::test]
async fn a_request_in_flight_over_tls_drains_on_shutdown() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let issued = ca.issue(1);
    for alpn in ["http/1.1", "h2"] {
        let upstream = FakeUpstream::start().await;
        upstream.update(|s| s.hold = Some("user_id=held"));
        let mut gw = TlsGateway::start(tls_config(&upstream.url(), &issued), false).await;
        let alpn: &'static [&'static str] = if alpn == "h2" { &["h2"] } else { &["http/1.1"] };
        let options = ClientOptions {
            alpn,
            ..ClientOptions::browser(&[&ca.cert])
        };
        let mut conn = TlsConn::open(gw.tls, &options).await;
        let in_flight = tokio::spawn(async move {
            let (got, _) = conn.get("/v1/vardata?user_id=held").await;
            conn.wait_closed().await;
            got
        });
        upstream.wait_for(1).await;

        gw.begin_shutdown();
        // The listener closes as the drain starts (in the same step as the connections
        // are told to close): wait for that before letting the answer go.
        timeout(NO_HANG, async {
            while let Ok(probe) = TcpStream::connect(gw.tls).await {
                drop(probe);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the listener closes on shutdown");
        upstream.release_held();

        let got = timeout(NO_HANG, in_flight)
            .await
            .expect("the request in flight is answered and its connection closed")
            .unwrap();
        assert_eq!(got.status, 200, "{alpn:?}");
        assert_eq!(got.x_cache(), "MISS", "{alpn:?}");
        timeout(NO_HANG, gw.shutdown())
            .await
            .expect("the drain ends");
    }
}

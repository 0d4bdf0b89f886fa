//! The HTTPS listener (`[tls]`, issue 16): handshake and the same answers as cleartext,
//! ALPN `h2` and `http/1.1` (and the alert for any other), TLS 1.2 and 1.3, certificate rotation on file change with a
//! connection open, a bad new pair keeping the old one, the key formats a pair may come in
//! and the files refused unread. Handshake timing, stalls and drain are in
//! `tests/tls_connections.rs`; the real binary's side (SIGHUP, exit 64, TLS only) is in
//! `tests/tls_cli.rs`.

mod support;

use std::path::Path;

use evalgate::server::CertStore;
use evalgate::server::tls::MAX_PEM_BYTES;
use http::Version;
use rustls::ProtocolVersion;
use support::certs::*;
use support::https::*;
use support::redis::process::TempDir;
use support::*;
use tokio::net::TcpStream;

const VARDATA: &str = "/v1/vardata?user_id=u1&flag_key=a";

#[tokio::test]
async fn https_answers_like_cleartext_from_the_same_cache() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let issued = ca.issue(1);
    let upstream = FakeUpstream::start().await;
    let gw = TlsGateway::start(tls_config(&upstream.url(), &issued), true).await;
    let mut conn = TlsConn::open(gw.tls, &ClientOptions::browser(&[&ca.cert])).await;
    assert_eq!(conn.peer_cert, issued.der());

    let (first, _) = conn.get(VARDATA).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.x_cache(), "MISS");
    let (second, _) = conn.get(VARDATA).await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.body, first.body);
    // One gateway behind both listeners: the cleartext one hits the entry HTTPS filled.
    let plain = format!("http://{}{VARDATA}", gw.plain.unwrap());
    let cleartext = get_with_key(&client(), &plain, KEY).await;
    assert_eq!(cleartext.x_cache(), "HIT");
    assert_eq!(cleartext.body, first.body);
    assert_eq!(upstream.count(), 1);
    assert_eq!(gw.handshakes(), [1, 0, 0, 0]);
    gw.shutdown().await;
}

#[tokio::test]
async fn alpn_h2_and_http11_and_none() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let issued = ca.issue(1);
    let upstream = FakeUpstream::start().await;
    let gw = TlsGateway::start(tls_config(&upstream.url(), &issued), false).await;
    // (offered, negotiated, the version answers come in)
    type Case = (&'static [&'static str], Option<&'static [u8]>, Version);
    let cases: [Case; 4] = [
        (&["h2", "http/1.1"], Some(b"h2"), Version::HTTP_2),
        (&["h2"], Some(b"h2"), Version::HTTP_2),
        (&["http/1.1"], Some(b"http/1.1"), Version::HTTP_11),
        // No ALPN offered: HTTP/1.1.
        (&[], None, Version::HTTP_11),
    ];
    for (offered, negotiated, version) in cases {
        let options = ClientOptions {
            alpn: offered,
            ..ClientOptions::browser(&[&ca.cert])
        };
        let mut conn = TlsConn::open(gw.tls, &options).await;
        assert_eq!(conn.alpn.as_deref(), negotiated, "offered {offered:?}");
        let (got, answered_in) = conn.get(VARDATA).await;
        assert_eq!(got.status, 200, "offered {offered:?}");
        assert_eq!(answered_in, version, "offered {offered:?}");
    }
    assert_eq!(upstream.count(), 1);
    // Only other protocols offered: the no_application_protocol alert, no connection.
    let options = ClientOptions {
        alpn: &["spdy/3", "http/1.0"],
        ..ClientOptions::browser(&[&ca.cert])
    };
    let tcp = TcpStream::connect(gw.tls).await.unwrap();
    let refused = try_tls_handshake(tcp, &options).await.unwrap_err();
    assert!(
        refused.to_string().contains("NoApplicationProtocol"),
        "{refused}"
    );
    gw.wait_handshakes([4, 1, 0, 0]).await;
    gw.shutdown().await;
}

#[tokio::test]
async fn tls12_and_tls13_are_both_accepted() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let issued = ca.issue(1);
    let upstream = FakeUpstream::start().await;
    let gw = TlsGateway::start(tls_config(&upstream.url(), &issued), false).await;
    static TLS12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static TLS13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    for (versions, expected) in [
        (&TLS12, ProtocolVersion::TLSv1_2),
        (&TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let options = ClientOptions {
            versions,
            ..ClientOptions::browser(&[&ca.cert])
        };
        let mut conn = TlsConn::open(gw.tls, &options).await;
        assert_eq!(conn.version, expected);
        let (got, _) = conn.get(VARDATA).await;
        assert_eq!(got.status, 200);
    }
    gw.shutdown().await;
}

/// A new pair swapped in the way Kubernetes updates a mounted secret (both files are
/// symlinks through `..data`, which is renamed to point at a new directory) is picked up
/// by the poll: new handshakes get the new certificate, and a keep-alive connection opened
/// before goes on working.
#[tokio::test]
async fn rotation_on_file_change_keeps_open_connections() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let old = ca.issue(1);
    let new = ca.issue(2);
    let mount = dir.path().join("mount");
    let version = |n: u32, issued: &Issued| {
        let data = mount.join(format!("..v{n}"));
        std::fs::create_dir_all(&data).unwrap();
        std::fs::copy(&issued.cert, data.join("tls.crt")).unwrap();
        std::fs::copy(&issued.key, data.join("tls.key")).unwrap();
        let link = mount.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..v{n}"), &link).unwrap();
        std::fs::rename(&link, mount.join("..data")).unwrap();
    };
    version(1, &old);
    let live = Issued {
        cert: mount.join("tls.crt"),
        key: mount.join("tls.key"),
    };
    std::os::unix::fs::symlink("..data/tls.crt", &live.cert).unwrap();
    std::os::unix::fs::symlink("..data/tls.key", &live.key).unwrap();
    let upstream = FakeUpstream::start().await;
    let mut config = tls_config(&upstream.url(), &live);
    config.tls.reload_interval_ms = 100;
    let gw = TlsGateway::start(config, false).await;
    let options = ClientOptions {
        alpn: &["http/1.1"],
        ..ClientOptions::browser(&[&ca.cert])
    };
    let mut before = TlsConn::open(gw.tls, &options).await;
    assert_eq!(before.peer_cert, old.der());
    assert_eq!(before.get(VARDATA).await.0.x_cache(), "MISS");

    version(2, &new);
    gw.wait_reloads([1, 0]).await;

    // The connection opened before the rotation is still served.
    assert_eq!(before.get(VARDATA).await.0.x_cache(), "HIT");
    let mut after = TlsConn::open(gw.tls, &options).await;
    assert_eq!(after.peer_cert, new.der());
    assert_eq!(after.get(VARDATA).await.0.x_cache(), "HIT");
    assert_eq!(gw.reloads(), [1, 0]);
    gw.shutdown().await;
}

/// A bad new certificate is counted and the old pair keeps serving; a certificate written
/// before its key fails once (mismatch) and loads when the key follows.
#[tokio::test]
async fn bad_new_pair_keeps_the_old_one() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let old = ca.issue(1);
    let new = ca.issue(2);
    let live = Issued {
        cert: dir.path().join("live.crt"),
        key: dir.path().join("live.key"),
    };
    std::fs::copy(&old.cert, &live.cert).unwrap();
    std::fs::copy(&old.key, &live.key).unwrap();
    let upstream = FakeUpstream::start().await;
    let mut config = tls_config(&upstream.url(), &live);
    config.tls.reload_interval_ms = 100;
    let gw = TlsGateway::start(config, false).await;
    let options = ClientOptions::browser(&[&ca.cert]);

    // Each change is one rename, so a poll never reads a file half written.
    let garbage = dir.path().join("garbage.crt");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n").unwrap();
    replace(&garbage, &live.cert);
    gw.wait_reloads([0, 1]).await;
    let mut conn = TlsConn::open(gw.tls, &options).await;
    assert_eq!(conn.peer_cert, old.der());
    assert_eq!(conn.get(VARDATA).await.0.status, 200);

    // The new certificate first, with the old key: a mismatch, the old pair still serves.
    replace(&new.cert, &live.cert);
    gw.wait_reloads([0, 2]).await;
    assert_eq!(TlsConn::open(gw.tls, &options).await.peer_cert, old.der());
    // Then its key: retried on the next poll, and served.
    replace(&new.key, &live.key);
    gw.wait_reloads([1, 2]).await;
    assert_eq!(TlsConn::open(gw.tls, &options).await.peer_cert, new.der());
    assert_eq!(gw.reloads(), [1, 2]);
    gw.shutdown().await;
}

/// The TLS listener shares the cleartext one's connection code: a request head too long
/// for the connection's buffer gets evalgate's JSON 431, not hyper's bare one.
#[tokio::test]
async fn oversized_head_over_tls_gets_the_json_answer() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let issued = ca.issue(1);
    let upstream = FakeUpstream::start().await;
    let gw = TlsGateway::start(tls_config(&upstream.url(), &issued), false).await;
    let options = ClientOptions {
        alpn: &["http/1.1"],
        ..ClientOptions::browser(&[&ca.cert])
    };
    let mut conn = TlsConn::open(gw.tls, &options).await;
    // Far past the head buffer (max_header_bytes + max_query_bytes + 8 KiB = 56 KiB).
    let big = "x".repeat(200 * 1024);
    let (got, _) = conn.get_with(VARDATA, &[("x-big", &big)]).await;
    assert_eq!(got.status, 431);
    assert!(got.json()["error"].is_string(), "{:?}", got.body);
    assert_eq!(upstream.count(), 0);
    gw.shutdown().await;
}

/// PKCS#8, SEC1 and RSA keys load; a key of another certificate, a missing file and a
/// file without a certificate are refused naming the key at fault.
#[test]
fn key_formats_and_refused_pairs() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let load = |cert: &Path, key: &Path| {
        let mut config = evalgate::Config::default();
        config.tls.cert_file = cert.display().to_string();
        config.tls.key_file = key.display().to_string();
        CertStore::load(&config.tls).map_err(|e| e.to_string())
    };
    for (serial, format) in [
        (1, KeyFormat::Pkcs8),
        (2, KeyFormat::Sec1),
        (3, KeyFormat::Rsa),
    ] {
        let issued = ca.issue_with(serial, format);
        let store = load(&issued.cert, &issued.key).unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_eq!(store.serial(), format!("{serial:02x}"), "{format:?}");
    }
    let a = ca.issue(4);
    let b = ca.issue(5);
    let msg = load(&a.cert, &b.key).unwrap_err();
    assert!(
        msg.starts_with("`tls.key_file`") && msg.contains("does not match"),
        "{msg}"
    );
    let msg = load(&dir.path().join("missing.crt"), &a.key).unwrap_err();
    assert!(
        msg.starts_with("`tls.cert_file`") && msg.contains("cannot read"),
        "{msg}"
    );
    let msg = load(&a.key, &a.key).unwrap_err();
    assert!(
        msg.starts_with("`tls.cert_file`") && msg.contains("no PEM certificate"),
        "{msg}"
    );
    let msg = load(&a.cert, &a.cert).unwrap_err();
    assert!(msg.starts_with("`tls.key_file`"), "{msg}");
}

/// A file past `MAX_PEM_BYTES`, a device and a FIFO are refused from their metadata,
/// naming the key: none is read to its end (a FIFO without a writer would block the open
/// for ever, `/dev/zero` would never end).
#[test]
fn oversized_and_special_files_are_refused_unread() {
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path());
    let a = ca.issue(1);
    let big = dir.path().join("big.crt");
    let mut pem = std::fs::read(&a.cert).unwrap();
    pem.resize(usize::try_from(MAX_PEM_BYTES).unwrap() + 1, b'\n');
    std::fs::write(&big, pem).unwrap();
    let fifo = dir.path().join("fifo.key");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let cases = [
        (big.clone(), a.key.clone(), "tls.cert_file", "larger than"),
        (a.cert.clone(), fifo, "tls.key_file", "not a regular file"),
        (
            "/dev/zero".into(),
            a.key.clone(),
            "tls.cert_file",
            "not a regular file",
        ),
    ];
    for (cert, key, name, why) in cases {
        let mut config = evalgate::Config::default();
        config.tls.cert_file = cert.display().to_string();
        config.tls.key_file = key.display().to_string();
        // On a thread, so a read that blocks fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(CertStore::load(&config.tls).map_err(|e| e.to_string()));
        });
        let msg = rx
            .recv_timeout(NO_HANG)
            .unwrap_or_else(|_| panic!("{cert:?} / {key:?} load without blocking"))
            .unwrap_err();
        assert!(
            msg.starts_with(&format!("`{name}`")) && msg.contains(why),
            "{msg}"
        );
    }
}

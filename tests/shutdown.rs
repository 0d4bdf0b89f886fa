//! The real binary's signals: on SIGTERM in-flight requests finish, new connections are
//! refused and the process exits 0; SIGHUP reloads the config's live keys.

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::StatusCode;
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Generous bound proving "does not hang", never a speed requirement.
const NO_HANG: Duration = Duration::from_secs(10);

/// A fresh, empty directory (no `config.toml`: built-in defaults), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("evalgate-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary, started on 127.0.0.1:0 with JSON logs; its stderr lines arrive on `logs`.
struct Gateway {
    child: Child,
    addr: SocketAddr,
    logs: mpsc::UnboundedReceiver<serde_json::Value>,
    _dir: TempDir,
}

impl Gateway {
    async fn start(upstream_url: &str) -> Gateway {
        let dir = TempDir::new("shutdown");
        let mut child = Command::new(env!("CARGO_BIN_EXE_evalgate"))
            .args(["--listen", "127.0.0.1:0", "--upstream", upstream_url])
            // Never the default admin port 9090: tests run in parallel.
            .args(["--admin-listen", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .env_remove("EVALGATE_LISTEN")
            .env_remove("EVALGATE_UPSTREAM")
            .env_remove("EVALGATE_ADMIN_LISTEN")
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the evalgate binary");
        let mut logs = forward_logs(child.stderr.take().unwrap());
        let addr = timeout(NO_HANG, async {
            loop {
                let line = logs.recv().await.expect("evalgate logs its listen address");
                if let Some(listen) = line.get("listen").and_then(|l| l.as_str()) {
                    return listen.parse::<SocketAddr>().expect("a socket address");
                }
            }
        })
        .await
        .expect("evalgate starts");
        Gateway {
            child,
            addr,
            logs,
            _dir: dir,
        }
    }

    fn sigterm(&self) {
        self.signal("-TERM");
    }

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run `kill` (Debian package procps: `apt-get install procps`)");
        assert!(status.success());
    }

    /// Waits for a log line whose message contains `needle`.
    async fn wait_for_log(&mut self, needle: &str) -> serde_json::Value {
        timeout(NO_HANG, async {
            loop {
                let line = self.logs.recv().await.expect("the log line arrives");
                if line["message"].as_str().is_some_and(|m| m.contains(needle)) {
                    return line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no log line containing {needle:?}"))
    }

    async fn exit_status(&mut self) -> std::process::ExitStatus {
        timeout(NO_HANG, self.child.wait())
            .await
            .expect("evalgate exits after SIGTERM")
            .unwrap()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Only still running if the test failed; kill it by its handle.
        let _ = self.child.start_kill();
    }
}

/// Parses each stderr line as JSON and forwards it (non-JSON lines as strings).
fn forward_logs(stderr: ChildStderr) -> mpsc::UnboundedReceiver<serde_json::Value> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let value = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
            if tx.send(value).is_err() {
                // Nobody listens any more; keep draining so the child never blocks.
                continue;
            }
        }
    });
    rx
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_refuses_new_connections() {
    let upstream = FakeUpstream::start().await;
    upstream.set_delay(Duration::from_secs(1));
    let mut gw = Gateway::start(&upstream.url()).await;

    let url = format!("http://{}/v1/vardata?user_id=slow", gw.addr);
    let slow = tokio::spawn(async move { get_with_key(&client(), &url, KEY).await });
    upstream.wait_for(1).await;

    gw.sigterm();
    gw.wait_for_log("no longer accepting connections").await;

    // A new client is refused, or its connection closed without an answer.
    match TcpStream::connect(gw.addr).await {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(mut stream) => {
            let _ = stream
                .write_all(b"GET /v1/vardata HTTP/1.1\r\nHost: x\r\n\r\n")
                .await;
            let mut seen = Vec::new();
            let read = timeout(NO_HANG, stream.read_to_end(&mut seen)).await;
            assert!(read.is_ok(), "the connection is closed, not left hanging");
            assert!(seen.is_empty(), "{:?}", String::from_utf8_lossy(&seen));
        }
    }

    let got = timeout(NO_HANG, slow)
        .await
        .expect("the slow request finishes")
        .unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.x_cache(), "MISS");
    assert!(got.json().get("flag-echo").is_some());

    let status = gw.exit_status().await;
    assert!(status.success(), "{status:?}");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn sigterm_when_idle_exits_zero() {
    let upstream = FakeUpstream::start().await;
    let mut gw = Gateway::start(&upstream.url()).await;
    gw.sigterm();
    let status = gw.exit_status().await;
    assert!(status.success(), "{status:?}");
    assert!(
        TcpStream::connect(gw.addr).await.is_err(),
        "nothing listens after exit"
    );
}

#[tokio::test]
async fn sigterm_after_serving_exits_zero() {
    let upstream = FakeUpstream::start().await;
    let mut gw = Gateway::start(&upstream.url()).await;
    let c = client();
    let got = get_with_key(
        &c,
        &format!("http://{}/v1/vardata?user_id=u1", gw.addr),
        KEY,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    // `c` keeps its idle keep-alive connection open: shutdown must close it, not wait.
    gw.sigterm();
    gw.wait_for_log("all connections drained").await;
    let status = gw.exit_status().await;
    assert!(status.success(), "{status:?}");
    drop(c);
}

#[tokio::test]
async fn sighup_applies_live_keys_and_names_the_others() {
    let upstream = FakeUpstream::start().await;
    let mut gw = Gateway::start(&upstream.url()).await;
    // Started without a config file (built-in defaults); now one appears.
    std::fs::write(
        gw._dir.0.join("config.toml"),
        "[cache]\nttl_s = 5\nmax_bytes = 1048576\n",
    )
    .unwrap();
    gw.signal("-HUP");
    let warned = gw.wait_for_log("only takes effect after a restart").await;
    assert_eq!(warned["level"], "WARN");
    assert_eq!(warned["key"], "cache.max_bytes");
    let reloaded = gw.wait_for_log("config reloaded").await;
    assert_eq!(reloaded["applied"], "cache.ttl_s");
    assert_eq!(reloaded["needs_restart"], 1);

    // Still serving; SIGTERM still drains.
    let got = get_with_key(
        &client(),
        &format!("http://{}/v1/vardata?user_id=u1", gw.addr),
        KEY,
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    gw.sigterm();
    assert!(gw.exit_status().await.success());
}

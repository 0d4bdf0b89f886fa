//! The HTTPS listener in the real binary: a bad certificate or key at start-up is a config
//! error (exit 64, naming the key; `--check` too), `server.listen = ""` serves HTTPS only,
//! and SIGHUP re-reads the pair with a connection open.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

use support::certs::*;
use support::cli::{EX_CONFIG, run, stderr};
use support::https::*;
use support::redis::process::TempDir;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

const VARDATA: &str = "/v1/vardata?user_id=u1&flag_key=a";

/// A config with the TLS listener only, serving `cert` and `key`.
fn tls_only_config(upstream: &str, cert: &Path, key: &Path) -> String {
    format!(
        "[server]\nlisten = \"\"\n\n\
         [upstream]\nurl = \"{upstream}\"\n\n\
         [admin]\nlisten = \"\"\n\n\
         [tls]\nlisten = \"127.0.0.1:0\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
         # Only SIGHUP reloads in these tests.\nreload_interval_ms = 3600000\n",
        cert.display(),
        key.display()
    )
}

/// Exit 64 with one stderr line naming `key`.
fn config_error(args: &[&str], dir: &Path, key: &str, why: &str) {
    let out = run(dir, args, &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(EX_CONFIG), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.contains(&format!("`{key}`")), "{err:?} names {key}");
    assert!(err.contains(why), "{err:?} says {why:?}");
}

#[test]
fn a_bad_pair_at_start_up_exits_64_naming_the_file() {
    let dir = TempDir::new("tls-cli");
    let ca = TestCa::new(dir.path());
    let a = ca.issue(1);
    let b = ca.issue(2);
    let config = dir.path().join("config.toml");
    let up = "http://127.0.0.1:1";
    let cases = [
        (
            dir.path().join("missing.crt"),
            a.key.clone(),
            "tls.cert_file",
            "cannot read",
        ),
        (
            a.cert.clone(),
            dir.path().join("missing.key"),
            "tls.key_file",
            "cannot read",
        ),
        (
            a.cert.clone(),
            b.key.clone(),
            "tls.key_file",
            "does not match",
        ),
        (
            a.key.clone(),
            a.key.clone(),
            "tls.cert_file",
            "no PEM certificate",
        ),
    ];
    for (cert, key, name, why) in cases {
        std::fs::write(&config, tls_only_config(up, &cert, &key)).unwrap();
        // Serving and `--check` alike.
        config_error(&["--config", "config.toml"], dir.path(), name, why);
        config_error(
            &["--config", "config.toml", "--check"],
            dir.path(),
            name,
            why,
        );
    }
    // A good pair passes `--check`.
    std::fs::write(&config, tls_only_config(up, &a.cert, &a.key)).unwrap();
    let out = run(dir.path(), &["--config", "config.toml", "--check"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // No listener at all is a config error too.
    std::fs::write(&config, "[server]\nlisten = \"\"\n").unwrap();
    config_error(
        &["--config", "config.toml"],
        dir.path(),
        "server.listen",
        "at least one listener",
    );
}

/// The binary with JSON logs; its stderr lines arrive on `logs`.
struct Binary {
    child: Child,
    logs: mpsc::UnboundedReceiver<serde_json::Value>,
}

impl Binary {
    async fn start(dir: &Path) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_evalgate"))
            .args(["--config", "config.toml", "--log-format", "json"])
            .env("RUST_LOG", "info")
            .env_remove("EVALGATE_LISTEN")
            .env_remove("EVALGATE_UPSTREAM")
            .env_remove("EVALGATE_ADMIN_LISTEN")
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the evalgate binary");
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let value = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
                // Nobody listening any more: keep draining so the child never blocks.
                let _ = tx.send(value);
            }
        });
        Binary { child, logs }
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

    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("run `kill` (Debian package procps)");
        assert!(status.success());
    }

    async fn stop(mut self) {
        self.signal("-TERM");
        let status = timeout(NO_HANG, self.child.wait())
            .await
            .expect("evalgate exits after SIGTERM")
            .unwrap();
        assert!(status.success(), "{status:?}");
    }
}

/// `server.listen = ""`: only the HTTPS listener, serving the gateway. SIGHUP re-reads the
/// pair: the connection opened before goes on, a new one gets the new certificate.
#[tokio::test]
async fn tls_only_and_sighup_rotation() {
    let dir = TempDir::new("tls-cli");
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
    std::fs::write(
        dir.path().join("config.toml"),
        tls_only_config(
            &upstream.url(),
            Path::new("live.crt"),
            Path::new("live.key"),
        ),
    )
    .unwrap();
    let mut binary = Binary::start(dir.path()).await;
    let https = binary.wait_for_log("HTTPS listener").await;
    assert_eq!(https["serial"], "01", "{https}");
    let started = binary.wait_for_log("started").await;
    assert_eq!(started["listen"], "off", "{started}");
    let tls: SocketAddr = started["tls"].as_str().unwrap().parse().unwrap();

    let options = ClientOptions::browser(&[&ca.cert]);
    let mut before = TlsConn::open(tls, &options).await;
    assert_eq!(before.peer_cert, old.der());
    assert_eq!(before.get(VARDATA).await.0.x_cache(), "MISS");

    replace(&new.cert, &live.cert);
    replace(&new.key, &live.key);
    binary.signal("-HUP");
    let reloaded = binary.wait_for_log("TLS certificate reloaded").await;
    assert_eq!(reloaded["serial"], "02", "{reloaded}");

    assert_eq!(before.get(VARDATA).await.0.x_cache(), "HIT");
    let mut after = TlsConn::open(tls, &options).await;
    assert_eq!(after.peer_cert, new.der());
    assert_eq!(after.get(VARDATA).await.0.x_cache(), "HIT");
    assert_eq!(upstream.count(), 1);
    drop(before);
    drop(after);
    binary.stop().await;
}

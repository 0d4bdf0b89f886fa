//! The binary and `[shared_cache]` (issue 13): `--check` validates the section and never
//! prints a secret, `--check --connect` reports an unreachable Redis in one line (exit 69),
//! and at start-up an unreachable Redis is one warning line while the gateway serves.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use evalgate::Config;
use support::cli::{EX_CONFIG, NO_HANG, TempDir, stderr, stdout};

use support::redis::{RedisCluster, RedisServer};
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

/// `EX_UNAVAILABLE`: `--check --connect` could not reach Redis.
const EX_UNAVAILABLE: i32 = 69;

/// Runs the binary in `dir` with `args` and no `EVALGATE_*` variables.
fn run(dir: &Path, args: &[&str]) -> Output {
    support::cli::run(dir, args, &[])
}

/// A loopback port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A config whose tier points at `url`, with a short connect timeout.
fn with_redis(dir: &TempDir, url: &str) -> PathBuf {
    dir.config(&format!(
        "[shared_cache]\nurl = \"{url}\"\nconnect_timeout_ms = 300\ntimeout_ms = 100\n"
    ))
}

/// `--check` succeeded: exit 0, nothing on stderr; the settings it printed.
fn checked(out: &Output) -> Config {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(out));
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(out));
    Config::from_toml_str(&stdout(out)).expect("--check prints valid TOML")
}

#[test]
fn check_connect_against_a_live_redis_exits_zero() {
    let server = RedisServer::start();
    let dir = TempDir::new();
    let path = with_redis(&dir, &server.url());
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check", "--connect"],
    );
    let config = checked(&out);
    assert_eq!(config.shared_cache.url, server.url());
}

#[test]
fn check_connect_against_a_closed_port_exits_69_with_one_line() {
    let port = closed_port();
    let dir = TempDir::new();
    let path = with_redis(&dir, &format!("redis://user:pw-in-url@127.0.0.1:{port}"));
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check", "--connect"],
    );
    assert_eq!(
        out.status.code(),
        Some(EX_UNAVAILABLE),
        "stderr: {}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one stderr line: {err:?}");
    let prefix =
        format!("evalgate: shared_cache: cannot reach redis://user:***@127.0.0.1:{port}: ");
    assert!(err.starts_with(&prefix), "{err:?}");
    assert!(err.trim_end().len() > prefix.len(), "a reason: {err:?}");
    assert!(!err.contains("pw-in-url"), "{err:?}");
}

#[test]
fn check_connect_reaches_a_cluster_or_names_its_first_node() {
    let cluster = RedisCluster::start(3);
    let dir = TempDir::new();
    let nodes = |urls: &[String]| {
        let quoted: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
        format!(
            "[shared_cache]\ncluster_nodes = [{}]\nconnect_timeout_ms = 300\ntimeout_ms = 100\n",
            quoted.join(", ")
        )
    };
    let path = dir.config(&nodes(&cluster.node_urls()));
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check", "--connect"],
    );
    assert_eq!(
        checked(&out).shared_cache.cluster_nodes,
        cluster.node_urls()
    );

    let closed = [closed_port(), closed_port()].map(|p| format!("redis://127.0.0.1:{p}"));
    let path = dir.config(&nodes(&closed));
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check", "--connect"],
    );
    assert_eq!(
        out.status.code(),
        Some(EX_UNAVAILABLE),
        "stderr: {}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one stderr line: {err:?}");
    let prefix = format!(
        "evalgate: shared_cache: cannot reach cluster {} (+1): ",
        closed[0]
    );
    assert!(err.starts_with(&prefix), "{err:?}");
}

#[test]
fn check_connect_over_tls_needs_the_ca_file() {
    let server = RedisServer::start_tls();
    let dir = TempDir::new();
    let ca = server.ca_file().display().to_string();
    let path = dir.config(&format!(
        "[shared_cache]\nurl = \"{}\"\nca_file = \"{ca}\"\nconnect_timeout_ms = 300\n",
        server.url()
    ));
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check", "--connect"],
    );
    assert_eq!(checked(&out).shared_cache.ca_file, ca);

    // The system's roots do not know the test CA.
    let path = with_redis(&dir, &server.url());
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check", "--connect"],
    );
    assert_eq!(
        out.status.code(),
        Some(EX_UNAVAILABLE),
        "stderr: {}",
        stderr(&out)
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one stderr line: {err:?}");
    let prefix = format!("evalgate: shared_cache: cannot reach {}: ", server.url());
    assert!(err.starts_with(&prefix), "{err:?}");
    assert!(err.to_lowercase().contains("certificate"), "{err:?}");
}

#[test]
fn check_connect_without_the_tier_has_nothing_to_reach() {
    let dir = TempDir::new();
    let path = dir.config("");
    let out = run(
        &dir.0,
        &["--config", path.to_str().unwrap(), "--check", "--connect"],
    );
    assert!(!checked(&out).shared_cache.enabled());
}

#[test]
fn connect_without_check_is_a_usage_error() {
    let dir = TempDir::new();
    let path = with_redis(&dir, &format!("redis://127.0.0.1:{}", closed_port()));
    let out = run(&dir.0, &["--config", path.to_str().unwrap(), "--connect"]);
    // clap's usage error: nothing was started.
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("--check"), "{}", stderr(&out));
}

#[test]
fn check_alone_only_validates_and_exits_zero_with_redis_unreachable() {
    let port = closed_port();
    let dir = TempDir::new();
    let path = with_redis(&dir, &format!("redis://127.0.0.1:{port}"));
    let out = run(&dir.0, &["--config", path.to_str().unwrap(), "--check"]);
    let config = checked(&out);
    assert_eq!(config.shared_cache.url, format!("redis://127.0.0.1:{port}"));
}

#[test]
fn bad_redis_urls_exit_64_naming_the_key() {
    for (section, key) in [
        ("url = \"http://x\"", "shared_cache.url"),
        ("url = \"redis://\"", "shared_cache.url"),
        (
            "cluster_nodes = [\"redis://127.0.0.1:7000\", \"http://x\"]",
            "shared_cache.cluster_nodes",
        ),
    ] {
        let dir = TempDir::new();
        let path = dir.config(&format!("[shared_cache]\n{section}\n"));
        for args in [&["--check"][..], &["--check", "--connect"], &[]] {
            let mut all = vec!["--config", path.to_str().unwrap()];
            all.extend_from_slice(args);
            let out = run(&dir.0, &all);
            assert_eq!(
                out.status.code(),
                Some(EX_CONFIG),
                "{section} {args:?}: {}",
                stderr(&out)
            );
            let err = stderr(&out);
            assert_eq!(err.lines().count(), 1, "one stderr line: {err:?}");
            assert!(err.contains(key), "{err:?} names {key}");
        }
    }
}

#[test]
fn check_never_prints_a_password_or_the_key_secret() {
    for section in [
        "url = \"redis://user:pw-in-url@127.0.0.1:6379/2\"",
        "url = \"rediss://:pw-in-url@127.0.0.1:6380\"",
        "cluster_nodes = [\"redis://user:pw-in-url@127.0.0.1:7000\", \"redis://user:pw-in-url@127.0.0.1:7001\"]",
    ] {
        let dir = TempDir::new();
        let path = dir.config(&format!(
            "[shared_cache]\n{section}\nkey_secret = \"the-key-secret\"\n"
        ));
        let out = run(&dir.0, &["--config", path.to_str().unwrap(), "--check"]);
        let text = stdout(&out);
        let config = checked(&out);
        assert!(!text.contains("pw-in-url"), "{text}");
        assert!(!text.contains("the-key-secret"), "{text}");
        assert_eq!(config.shared_cache.key_secret, "***");
        let urls = std::iter::once(&config.shared_cache.url)
            .chain(&config.shared_cache.cluster_nodes)
            .filter(|u| !u.is_empty());
        for url in urls {
            assert!(url.contains(":***@127.0.0.1:"), "{url}");
        }
    }
}

/// Started with Redis unreachable and no key secret: one warning for each, the gateway
/// serves (from the upstream), later retries only at debug level.
#[tokio::test]
async fn start_up_with_redis_unreachable_warns_once_and_serves() {
    let upstream = FakeUpstream::start().await;
    let port = closed_port();
    let dir = TempDir::new();
    let path = dir.config(&format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [upstream]\nurl = \"{}\"\n\n[shared_cache]\nurl = \"redis://user:pw-in-url@127.0.0.1:{port}\"\n\
         connect_timeout_ms = 100\nbreaker_open_ms = 20\nbreaker_max_open_ms = 40\n",
        upstream.url()
    ));
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_evalgate"))
        .args(["--config", path.to_str().unwrap(), "--log-format", "json"])
        .env("RUST_LOG", "evalgate=debug")
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

    // Every line until the second retry was logged (at debug level).
    let mut seen = Vec::new();
    let (mut retries, mut warned) = (0, 0);
    tokio::time::timeout(NO_HANG, async {
        // (A second warning ends the wait too: the assertions below then say why.)
        while retries < 2 && warned < 2 {
            let line = logs.recv().await.expect("evalgate keeps logging");
            if message(&line).contains("Redis still unreachable") {
                retries += 1;
            }
            if line["level"] == "WARN" && message(&line).contains("cannot reach Redis") {
                warned += 1;
            }
            seen.push(line);
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no two retries logged: {seen:#?}"));

    let warnings: Vec<&serde_json::Value> = seen.iter().filter(|l| l["level"] == "WARN").collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings.iter().any(|l| message(l)
            == "shared_cache.key_secret is empty: keys are unkeyed hashes: set shared_cache.key_secret"),
        "{warnings:#?}"
    );
    let unreachable = warnings
        .iter()
        .find(|l| message(l).contains("cannot reach Redis"))
        .unwrap_or_else(|| panic!("{warnings:#?}"));
    assert_eq!(
        unreachable["redis"],
        format!("redis://user:***@127.0.0.1:{port}")
    );
    assert!(
        !seen.iter().any(|l| l.to_string().contains("pw-in-url")),
        "{seen:#?}"
    );

    // It serves, as a single box.
    let listen = seen
        .iter()
        .find_map(|l| l["listen"].as_str())
        .unwrap_or_else(|| panic!("no start-up line: {seen:#?}"));
    let url = format!("http://{listen}/v1/vardata?user_id=u1&flag_key=a");
    let got = get_with_key(&client(), &url, KEY).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("x-cache-tier"), Some("upstream"));
    assert_eq!(upstream.count(), 1);

    child.start_kill().unwrap();
    child.wait().await.unwrap();
}

fn message(line: &serde_json::Value) -> &str {
    line["message"].as_str().unwrap_or("")
}

/// Parses each stderr line as JSON and forwards it (non-JSON lines as strings).
fn forward_logs(stderr: tokio::process::ChildStderr) -> mpsc::UnboundedReceiver<serde_json::Value> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let value = serde_json::from_str(&line).unwrap_or(serde_json::Value::String(line));
            // Nobody listening any more: keep draining so the child never blocks.
            let _ = tx.send(value);
        }
    });
    rx
}

//! `evalgate snapshot`, the real binary, against an in-test flags server on 127.0.0.1:0
//! (`--flags-url`): the file is what was served, the request carries the key and
//! `eval_mode=remote`, failures are one line and leave the existing file untouched.

mod support;

use std::io::Write as _;
use std::path::Path;
use std::process::Output;

use bytes::Bytes;
use http::StatusCode;
use support::cli::{TempDir, run, stderr, stdout};
use support::{FakeUpstream, KEY, Script};

/// The flags server runs on its own runtime while the test blocks on the binary.
struct Server {
    upstream: FakeUpstream,
    _runtime: tokio::runtime::Runtime,
}

impl Server {
    fn start(script: Script) -> Server {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let upstream = runtime.block_on(FakeUpstream::start());
        upstream.script(script);
        Server {
            upstream,
            _runtime: runtime,
        }
    }

    /// Serves exactly `body` (200, `application/json`, `Content-Encoding: coding`).
    fn serving(coding: &'static str, body: Vec<u8>) -> Server {
        Server::start(Script {
            encoded_body: Some((coding, Bytes::from(body))),
            ..Script::default()
        })
    }
}

fn shipped_flags() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("flags.json")).unwrap()
}

fn snapshot(dir: &TempDir, flags_url: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "snapshot",
        "--deployment-key",
        KEY,
        "--flags-url",
        flags_url,
    ];
    args.extend_from_slice(extra);
    run(&dir.0, &args, &[])
}

/// A failed run: status 1, exactly one line on stderr starting `evalgate snapshot: `,
/// the key never shown whole, nothing on stdout.
fn one_line_failure(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("evalgate snapshot: "), "{err}");
    assert!(!err.contains(KEY), "{err}");
    assert_eq!(stdout(out), "");
    err
}

/// The directory holds exactly `flags.json` with `content`: no temporary file left.
fn only_flags_file(dir: &TempDir, content: &[u8]) {
    let names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["flags.json"]);
    assert_eq!(std::fs::read(dir.0.join("flags.json")).unwrap(), content);
}

#[test]
fn writes_what_was_served_and_summarizes_it() {
    let served = shipped_flags();
    let server = Server::serving("", served.clone());
    let dir = TempDir::new();
    let out = snapshot(&dir, &server.upstream.url(), &[]);
    assert!(out.status.success(), "{out:?}");
    // The default output is flags.json in the working directory, byte for byte.
    only_flags_file(&dir, &served);
    let parsed = evalgate::eval::Flags::from_json(&served).unwrap();
    assert_eq!(parsed.len(), 4);

    let summary = stdout(&out);
    assert!(summary.starts_with("4 flags from http://"), "{summary}");
    for line in ["checkout-experiment  v7", "new-dashboard        v3"] {
        assert!(summary.contains(line), "{line}: {summary}");
    }
    assert!(
        summary.contains(&format!("wrote flags.json ({} bytes)", served.len())),
        "{summary}"
    );

    let request = server.upstream.last();
    assert_eq!(request.path_and_query, "/sdk/v2/flags?v=0&eval_mode=remote");
    assert_eq!(
        request.headers["authorization"],
        format!("Api-Key {KEY}").as_str()
    );
    assert_eq!(server.upstream.count(), 1);
}

#[test]
fn local_only_output_and_a_gzip_answer() {
    let served = shipped_flags();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&served).unwrap();
    let server = Server::serving("gzip", gz.finish().unwrap());
    let dir = TempDir::new();
    let out = snapshot(
        &dir,
        &format!("{}/", server.upstream.url()),
        &["--local-only", "--output", "snap.json"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(dir.0.join("snap.json")).unwrap(), served);
    assert_eq!(server.upstream.last().path_and_query, "/sdk/v2/flags?v=0");
    assert_eq!(server.upstream.last().headers["accept-encoding"], "gzip");
}

#[test]
fn unauthorized_is_one_line_and_keeps_the_old_file() {
    let server = Server::start(Script {
        status: Some(StatusCode::UNAUTHORIZED),
        ..Script::default()
    });
    let dir = TempDir::new();
    std::fs::write(dir.0.join("flags.json"), b"old").unwrap();
    let err = one_line_failure(&snapshot(&dir, &server.upstream.url(), &[]));
    assert!(err.contains("401 Unauthorized"), "{err}");
    assert!(err.contains("…0001"), "the key is named masked: {err}");
    only_flags_file(&dir, b"old");
}

#[test]
fn other_statuses_are_one_line_and_keep_the_old_file() {
    let server = Server::start(Script {
        status: Some(StatusCode::SERVICE_UNAVAILABLE),
        ..Script::default()
    });
    let dir = TempDir::new();
    std::fs::write(dir.0.join("flags.json"), b"old").unwrap();
    let err = one_line_failure(&snapshot(&dir, &server.upstream.url(), &[]));
    assert!(err.contains("503 Service Unavailable"), "{err}");
    only_flags_file(&dir, b"old");
}

#[test]
fn garbage_or_a_non_array_or_a_bad_flag_is_refused_before_writing() {
    let dir = TempDir::new();
    std::fs::write(dir.0.join("flags.json"), b"old").unwrap();
    let cases: [(&[u8], &str); 4] = [
        (b"<html>maintenance</html>", "not a flag array (not JSON"),
        (b"{\"flags\": []}", "not a flag array (a JSON object)"),
        (b"[{\"key\": ", "not a flag array (not JSON"),
        (
            b"[{\"segments\": []}]",
            "the engine does not accept the answer",
        ),
    ];
    for (body, expected) in cases {
        let server = Server::serving("", body.to_vec());
        let err = one_line_failure(&snapshot(&dir, &server.upstream.url(), &[]));
        assert!(err.contains(expected), "{expected}: {err}");
        only_flags_file(&dir, b"old");
    }
}

#[test]
fn a_too_large_answer_is_refused() {
    let server = Server::serving("", shipped_flags());
    let dir = TempDir::new();
    std::fs::write(dir.0.join("flags.json"), b"old").unwrap();
    let err = one_line_failure(&snapshot(
        &dir,
        &server.upstream.url(),
        &["--max-bytes", "100"],
    ));
    assert!(err.contains("--max-bytes 100"), "{err}");
    only_flags_file(&dir, b"old");
}

#[test]
fn a_closed_port_is_one_line_and_keeps_the_old_file() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let dir = TempDir::new();
    std::fs::write(dir.0.join("flags.json"), b"old").unwrap();
    let err = one_line_failure(&snapshot(&dir, &url, &[]));
    assert!(
        err.contains(&format!("cannot reach {url}/sdk/v2/flags")),
        "{err}"
    );
    only_flags_file(&dir, b"old");
}

#[test]
fn a_server_that_never_answers_times_out() {
    let server = Server::start(Script {
        hold: Some("/sdk/v2/flags"),
        ..Script::default()
    });
    let dir = TempDir::new();
    std::fs::write(dir.0.join("flags.json"), b"old").unwrap();
    let err = one_line_failure(&snapshot(
        &dir,
        &server.upstream.url(),
        &["--timeout-ms", "200"],
    ));
    assert!(err.contains("within 200 ms (--timeout-ms)"), "{err}");
    only_flags_file(&dir, b"old");
    server.upstream.release_held();
}

#[test]
fn bad_options_exit_64_with_one_line() {
    let dir = TempDir::new();
    let out = run(
        &dir.0,
        &[
            "snapshot",
            "--deployment-key",
            KEY,
            "--flags-url",
            "ftp://x",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(stderr(&out).contains("`--flags-url`"), "{}", stderr(&out));
    let out = run(&dir.0, &["snapshot", "--deployment-key", "a key"], &[]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(stderr(&out).contains("--deployment-key"));
    // --zone and --flags-url together are refused by the argument parser.
    let out = run(
        &dir.0,
        &[
            "snapshot",
            "--deployment-key",
            KEY,
            "--zone",
            "eu",
            "--flags-url",
            "http://h",
        ],
        &[],
    );
    assert!(!out.status.success());
}

#[test]
fn flags_needing_amplitude_are_named_on_stderr() {
    let flags = serde_json::json!([
        {"key": "cohort-flag", "metadata": {"flagVersion": 4}, "variants": {"on": {"key": "on"}},
         "segments": [{"conditions": [[{"selector": ["context", "user", "cohort_ids"], "op": "set contains any", "values": ["c1"]}]], "variant": "on"}]},
        {"key": "geo-flag", "metadata": {"flagVersion": 9}, "variants": {"on": {"key": "on"}},
         "segments": [{"conditions": [[{"selector": ["context", "user", "city"], "op": "is", "values": ["Berlin"]}]], "variant": "on"}]},
        {"key": "plain-flag", "metadata": {"flagVersion": 1}, "variants": {"on": {"key": "on"}},
         "segments": [{"variant": "on"}]}
    ]);
    let served = serde_json::to_vec(&flags).unwrap();
    let server = Server::serving("", served.clone());
    let dir = TempDir::new();
    let out = snapshot(&dir, &server.upstream.url(), &[]);
    assert!(out.status.success(), "{out:?}");
    only_flags_file(&dir, &served);
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("evalgate snapshot: warning: flag `cohort-flag`"),
        "{err}"
    );
    assert!(lines[0].contains("cohort membership"), "{err}");
    assert!(
        lines[1].starts_with("evalgate snapshot: warning: flag `geo-flag`"),
        "{err}"
    );
    assert!(lines[1].contains("IP address"), "{err}");
    assert!(stdout(&out).contains("2 flags cannot be reproduced offline"));
}

//! Running `evalgate workload` and reading its output back (`tests/workload.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use evalgate::normalize::form;
use serde_json::Value;

use super::KEY;
use super::cli::{TempDir, run_within, stderr, stdout};

/// The good deployment key every workload here is made for.
pub const GOOD: &str = KEY;

pub fn flags_file() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("flags.json")
        .display()
        .to_string()
}

/// Bound on one run of the binary: a debug build writes tens of thousands of requests in
/// seconds, but this machine may be shared; the bound only proves "does not hang".
pub const NO_HANG: Duration = Duration::from_secs(300);

/// Runs the binary in `dir` with `args`; it must exit by itself within [`NO_HANG`].
pub fn run(dir: &Path, args: &[&str]) -> Output {
    run_within(dir, args, &[], NO_HANG)
}

/// Runs `evalgate workload` with the shipped flags, the good key and `args`.
pub fn workload(dir: &Path, args: &[&str]) -> Output {
    let flags = flags_file();
    let mut argv = vec!["workload", "--flags", &flags, "--deployment-key", GOOD];
    argv.extend_from_slice(args);
    run(dir, &argv)
}

/// The workload written to `--output` (one generation pass, where standard output takes
/// two); it must have succeeded with one summary line and nothing on standard output.
pub fn generated(args: &[&str]) -> String {
    let dir = TempDir::new();
    let path = dir.0.join("out");
    let mut with = args.to_vec();
    with.extend(["--output", path.to_str().unwrap()]);
    let out = workload(&dir.0, &with);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    std::fs::read_to_string(path).unwrap()
}

/// The workload written to standard output.
pub fn generated_stdout(args: &[&str]) -> String {
    let dir = TempDir::new();
    let out = workload(&dir.0, args);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    stdout(&out)
}

/// A refusal: `code`, nothing on stdout, one stderr line naming `what`.
pub fn refused(out: &Output, code: i32, what: &str) -> String {
    assert_eq!(out.status.code(), Some(code), "stderr: {}", stderr(out));
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(out));
    let err = stderr(out);
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(what), "{err:?} names {what}");
    err
}

/// One generated request, read back from a vegeta target.
#[derive(Debug, Clone)]
pub struct Target {
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
    pub body: Option<Vec<u8>>,
}

impl Target {
    pub fn path(&self) -> String {
        let uri: http::Uri = self.url.parse().unwrap();
        uri.path().to_string()
    }

    pub fn query(&self) -> HashMap<String, String> {
        let uri: http::Uri = self.url.parse().unwrap();
        form::pairs(uri.query().unwrap_or(""))
            .map(|p| {
                let (n, v) = p.unwrap();
                (n.into_owned(), v.into_owned())
            })
            .collect()
    }

    pub fn endpoint(&self) -> &'static str {
        match (self.method.as_str(), self.path().as_str()) {
            ("GET", "/v1/vardata") => "v1",
            ("GET", "/sdk/v2/vardata") => "v2get",
            ("POST", "/sdk/v2/vardata") => "v2post",
            other => panic!("unexpected request {other:?}"),
        }
    }

    /// The user as sent: `context` on v1, the decoded header on v2 GET, the body on POST.
    pub fn user_text(&self) -> String {
        match self.endpoint() {
            "v1" => self.query().get("context").cloned().unwrap_or_default(),
            "v2get" => {
                let b64 = &self.headers["X-Amp-Exp-User"];
                String::from_utf8(evalgate::b64::decode(b64).unwrap()).unwrap()
            }
            _ => String::from_utf8(self.body.clone().unwrap()).unwrap(),
        }
    }

    pub fn bad_key(&self) -> bool {
        self.headers["Authorization"] != format!("Api-Key {GOOD}")
    }

    pub fn bad_context(&self) -> bool {
        serde_json::from_str::<serde_json::Map<String, Value>>(&self.user_text()).is_err()
    }

    /// The flag keys asked for, `None` for all.
    pub fn subset(&self) -> Option<Vec<String>> {
        match self.endpoint() {
            "v1" => self
                .query()
                .get("flag_keys")
                .map(|l| l.split(',').map(String::from).collect()),
            _ => self
                .headers
                .get("X-Amp-Exp-Flag-Keys")
                .map(|h| serde_json::from_slice(&evalgate::b64::decode(h).unwrap()).unwrap()),
        }
    }

    /// The user's index, from `user_id` (`user-<n>`) or the last group of `device_id`.
    pub fn user_index(&self) -> u64 {
        let text = match self.endpoint() {
            "v1" => {
                let q = self.query();
                let id = |n: &str| q.get(n).map(|v| format!("\"{n}\":\"{v}\""));
                format!(
                    "{}{}",
                    id("user_id").unwrap_or_default(),
                    id("device_id").unwrap_or_default()
                )
            }
            _ => self.user_text(),
        };
        if let Some(at) = text.find("\"user_id\":\"user-") {
            let rest = &text[at + 16..];
            return rest[..rest.find('"').unwrap()].parse().unwrap();
        }
        let at = text.find("\"device_id\":\"").expect("an id") + 13;
        u64::from_str_radix(&text[at + 24..at + 36], 16).unwrap()
    }
}

/// Parses vegeta targets: one JSON object a line, `header` of arrays, `body` base64.
pub fn vegeta(text: &str) -> Vec<Target> {
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON line");
            let obj = v.as_object().unwrap();
            for k in obj.keys() {
                assert!(
                    ["method", "url", "header", "body"].contains(&k.as_str()),
                    "{k}"
                );
            }
            let headers = obj["header"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| {
                    let values = v.as_array().expect("header values are arrays");
                    assert_eq!(values.len(), 1);
                    (k.clone(), values[0].as_str().unwrap().to_string())
                })
                .collect();
            Target {
                method: obj["method"].as_str().unwrap().to_string(),
                url: obj["url"].as_str().unwrap().to_string(),
                headers,
                body: obj
                    .get("body")
                    .map(|b| STANDARD.decode(b.as_str().unwrap()).expect("base64 body")),
            }
        })
        .collect()
}

/// `count` of `n` is within binomial tolerance (5 standard deviations) of share `p`.
pub fn assert_share(count: usize, n: usize, p: f64, what: &str) {
    let (n, count) = (n as f64, count as f64);
    let sd = (n * p * (1.0 - p)).sqrt();
    assert!(
        (count - n * p).abs() <= 5.0 * sd + 1.0,
        "{what}: {count} of {n}, expected {:.1} ± {:.1}",
        n * p,
        5.0 * sd
    );
}

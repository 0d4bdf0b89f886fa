//! `evalgate snapshot`: pulls a deployment's flag configurations from Amplitude's flags
//! API into a file the embedded engine serves.
//!
//! One request ([`fetch`]), the answer checked by the engine before anything is written
//! ([`crate::eval::Flags::from_json`]), the file replaced atomically ([`write`]), and a
//! warning for every flag whose targeting reads what only Amplitude knows ([`offline`]).
//! Every failure is one line and leaves an existing output file untouched.

mod fetch;
mod offline;
mod write;

pub use offline::{OfflineWarning, SERVER_SIDE, ServerSide, offline_warnings};
pub use write::write_atomically;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

/// Amplitude's flags API in the US data center.
pub const US_FLAGS_URL: &str = "https://flag.lab.amplitude.com";
/// Amplitude's flags API in the EU data center.
pub const EU_FLAGS_URL: &str = "https://flag.lab.eu.amplitude.com";
/// The output file when `--output` is not given (in the working directory).
pub const DEFAULT_OUTPUT: &str = "flags.json";
/// Default `--timeout-ms`: connect, TLS, answer and body together.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default `--max-bytes`: the largest answer (decoded) accepted.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Flags listed one per line in the summary; more are listed compactly.
const LISTED_ONE_PER_LINE: usize = 50;

/// Amplitude's data centers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Zone {
    Us,
    Eu,
}

/// What to ask for.
#[derive(Debug, Clone)]
pub struct Options {
    pub deployment_key: String,
    /// A zone's flags API, or a base URL (`scheme://host[:port][/prefix]`) instead.
    pub zone: Zone,
    pub flags_url: Option<String>,
    /// Ask without `eval_mode=remote`: only the flags set to local evaluation.
    pub local_only: bool,
    pub output: PathBuf,
    pub timeout: Duration,
    pub max_bytes: usize,
}

/// Why a snapshot was not written: one line, for `evalgate snapshot: …`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The options make no request (exit 64).
    #[error("{0}")]
    Usage(String),
    /// The request, the answer or the write failed (exit 1).
    #[error("{0}")]
    Failed(String),
}

/// What a snapshot wrote.
#[derive(Debug, Clone)]
pub struct Report {
    pub url: String,
    pub output: PathBuf,
    pub bytes: usize,
    /// Each flag's key and `metadata.flagVersion`, in file order.
    pub flags: Vec<(String, Option<u64>)>,
    pub warnings: Vec<OfflineWarning>,
}

impl Options {
    /// The request URL: `{base}/sdk/v2/flags?v=0&eval_mode=remote` (without
    /// `&eval_mode=remote` when `local_only`).
    pub fn url(&self) -> Result<String, SnapshotError> {
        let base = match &self.flags_url {
            Some(url) => crate::config::base_url("--flags-url", url)
                .map_err(|e| SnapshotError::Usage(e.to_string()))?,
            None => match self.zone {
                Zone::Us => US_FLAGS_URL.to_string(),
                Zone::Eu => EU_FLAGS_URL.to_string(),
            },
        };
        let mode = if self.local_only {
            ""
        } else {
            "&eval_mode=remote"
        };
        Ok(format!("{base}/sdk/v2/flags?v=0{mode}"))
    }
}

/// Fetches, validates and writes; blocks until done (its own small runtime).
pub fn run(options: &Options) -> Result<Report, SnapshotError> {
    let key = &options.deployment_key;
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SnapshotError::Usage(
            "--deployment-key: not a key (visible ASCII, no spaces)".into(),
        ));
    }
    let url = options.url()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SnapshotError::Failed(format!("cannot start the runtime: {e}")))?;
    let body = runtime
        .block_on(fetch::fetch(&url, key, options.timeout, options.max_bytes))
        .map_err(SnapshotError::Failed)?;
    let flags = check(&body).map_err(|e| SnapshotError::Failed(format!("{url}: {e}")))?;
    write_atomically(&options.output, &body).map_err(SnapshotError::Failed)?;
    Ok(Report {
        url,
        output: options.output.clone(),
        bytes: body.len(),
        flags: flags
            .iter()
            .map(|f| {
                let key = f.get("key").and_then(Value::as_str).unwrap_or("?");
                let version = f.pointer("/metadata/flagVersion").and_then(Value::as_u64);
                // Printed to a terminal: control characters from the server are escaped.
                (key.escape_debug().to_string(), version)
            })
            .collect(),
        warnings: offline_warnings(&flags),
    })
}

/// The answer as a flag array the engine accepts.
fn check(body: &[u8]) -> Result<Vec<Value>, String> {
    let flags = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(flags)) => flags,
        Ok(other) => {
            return Err(format!(
                "the answer is not a flag array (a JSON {})",
                kind(&other)
            ));
        }
        Err(e) => return Err(format!("the answer is not a flag array (not JSON: {e})")),
    };
    crate::eval::Flags::from_json(body)
        .map_err(|e| format!("the engine does not accept the answer: {e}"))?;
    Ok(flags)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Report {
    /// The summary printed to stdout: the count, each flag with its version (compactly
    /// when there are many), and where the file went.
    pub fn summary(&self) -> String {
        let version = |v: &Option<u64>| v.map_or_else(|| "v?".to_string(), |v| format!("v{v}"));
        let mut out = format!("{} flags from {}\n", self.flags.len(), self.url);
        if self.flags.len() <= LISTED_ONE_PER_LINE {
            let width = self.flags.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (key, v) in &self.flags {
                out.push_str(&format!("  {key:<width$}  {}\n", version(v)));
            }
        } else {
            let mut line = String::from(" ");
            for (key, v) in &self.flags {
                let item = format!(" {key}@{}", version(v));
                if line.len() + item.len() > 100 {
                    out.push_str(&line);
                    out.push('\n');
                    line = String::from(" ");
                }
                line.push_str(&item);
            }
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str(&format!(
            "wrote {} ({} bytes)\n",
            self.output.display(),
            self.bytes
        ));
        if !self.warnings.is_empty() {
            let n = self.warnings.len();
            let flags = if n == 1 { "flag" } else { "flags" };
            out.push_str(&format!(
                "{n} {flags} cannot be reproduced offline (see the warnings)\n"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(flags_url: Option<&str>, zone: Zone, local_only: bool) -> Options {
        Options {
            deployment_key: "server-k".into(),
            zone,
            flags_url: flags_url.map(str::to_string),
            local_only,
            output: DEFAULT_OUTPUT.into(),
            timeout: Duration::from_millis(DEFAULT_TIMEOUT_MS),
            max_bytes: 1024,
        }
    }

    #[test]
    fn urls_for_zones_bases_and_local_only() {
        let url = |o: Options| o.url().unwrap();
        assert_eq!(
            url(options(None, Zone::Us, false)),
            "https://flag.lab.amplitude.com/sdk/v2/flags?v=0&eval_mode=remote"
        );
        assert_eq!(
            url(options(None, Zone::Eu, true)),
            "https://flag.lab.eu.amplitude.com/sdk/v2/flags?v=0"
        );
        assert_eq!(
            url(options(Some("http://127.0.0.1:9/prefix/"), Zone::Us, false)),
            "http://127.0.0.1:9/prefix/sdk/v2/flags?v=0&eval_mode=remote"
        );
        let bad = options(Some("ftp://x"), Zone::Us, false).url().unwrap_err();
        assert!(matches!(bad, SnapshotError::Usage(ref m) if m.contains("--flags-url")));
    }

    #[test]
    fn only_a_flag_array_the_engine_accepts_passes() {
        assert!(check(b"[]").unwrap().is_empty());
        assert!(
            check(b"{\"flags\":[]}")
                .unwrap_err()
                .contains("a JSON object")
        );
        assert!(check(b"<html>").unwrap_err().contains("not JSON"));
        assert!(check(b"[{\"nokey\":1}]").unwrap_err().contains("engine"));
    }

    #[test]
    fn many_flags_are_listed_compactly() {
        let report = Report {
            url: "u".into(),
            output: "f.json".into(),
            bytes: 1,
            flags: (0..200).map(|i| (format!("flag-{i}"), Some(i))).collect(),
            warnings: vec![],
        };
        let summary = report.summary();
        assert!(summary.starts_with("200 flags from u\n"));
        assert!(summary.contains(" flag-199@v199"));
        assert!(summary.lines().count() < 50, "{summary}");
        assert!(summary.lines().all(|l| l.len() <= 101));
    }
}

//! Every answer the soak's clients get is checked here, and counted.
//!
//! An answer is right when it is what its [`Expect`] says: the model's status and body for
//! this exact request (whether it came from the cache, fresh or stale, or the upstream), or
//! a 5xx/429 while an upstream fault explains it (see [`FaultLog::explains`]); or evalgate's
//! own JSON error for a request over a limit.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

use crate::model;
use crate::traffic::{Expect, Spec};
use crate::upstream::FaultLog;

/// Statuses an upstream fault can explain: the upstream's own 500/429 relayed, evalgate's
/// 502 (reset, garbage), 503 (in-flight limit, held by hung requests), 504 (timeout).
const FAULT_STATUSES: [u16; 5] = [429, 500, 502, 503, 504];

/// Checks one answer; `Ok` with the label it is counted under, `Err` with what is wrong.
pub fn check(
    spec: &Spec,
    status: u16,
    x_cache: &str,
    body: &[u8],
    started: Instant,
    faults: &FaultLog,
) -> Result<String, String> {
    match spec.expect {
        Expect::Gateway(want) => {
            let json: Option<Value> = serde_json::from_slice(body).ok();
            let is_error = json.as_ref().is_some_and(|j| j.get("error").is_some());
            if status == want && is_error {
                Ok(format!("{status}"))
            } else {
                Err(format!("status {status} (want evalgate's JSON {want})"))
            }
        }
        Expect::Model => {
            let want = model::answer(&model::Request {
                method: spec.method,
                path_and_query: &spec.path_and_query,
                headers: &spec.headers,
                body: &spec.body,
            });
            if status == want.status {
                let got: Option<Value> = serde_json::from_slice(body).ok();
                if got.as_ref() == Some(&want.body) {
                    Ok(format!("{status} {x_cache}"))
                } else {
                    Err(format!(
                        "wrong body ({status} {x_cache}): got {} want {}",
                        String::from_utf8_lossy(body),
                        want.body
                    ))
                }
            } else if FAULT_STATUSES.contains(&status) {
                if faults.explains(started) {
                    Ok(format!("{status} {x_cache} (fault)"))
                } else {
                    Err(format!(
                        "status {status} {x_cache} with no upstream fault to explain it"
                    ))
                }
            } else {
                Err(format!(
                    "status {status} {x_cache} (model says {})",
                    want.status
                ))
            }
        }
    }
}

/// Counts by kind and outcome, and the wrong answers with one example each.
#[derive(Default)]
pub struct Tally {
    counts: Mutex<BTreeMap<(String, String), u64>>,
    wrong: Mutex<BTreeMap<String, (u64, String)>>,
}

impl Tally {
    pub fn count(&self, kind: &str, label: &str) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry((kind.to_string(), label.to_string()))
            .or_default() += 1;
    }

    /// A wrong answer: counted under `kind` and `what` (its first words), with `spec` as
    /// the example.
    pub fn wrong(&self, kind: &str, what: &str, spec: &Spec) {
        self.count(kind, "WRONG");
        let class = format!("{kind}: {}", what.split(':').next().unwrap_or(what));
        let mut wrong = self.wrong.lock().unwrap();
        let entry = wrong
            .entry(class)
            .or_insert_with(|| (0, format!("{what}\n      request: {spec:?}")));
        entry.0 += 1;
    }

    pub fn total(&self) -> u64 {
        self.counts.lock().unwrap().values().sum()
    }

    pub fn wrong_total(&self) -> u64 {
        self.wrong.lock().unwrap().values().map(|(n, _)| n).sum()
    }

    pub fn print(&self) {
        eprintln!(
            "  {:<10} {:<28} {:>9}",
            "kind", "outcome (status X-Cache)", "count"
        );
        for ((kind, label), n) in self.counts.lock().unwrap().iter() {
            eprintln!("  {kind:<10} {label:<28} {n:>9}");
        }
        for (class, (n, example)) in self.wrong.lock().unwrap().iter() {
            eprintln!("  WRONG x{n} {class}\n      e.g. {example}");
        }
    }
}

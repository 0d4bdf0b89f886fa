//! Runs cases through both engines, compares the results and explains differences.
//!
//! The JS side is one `node tests/conformance/eval.js` process per batch, fed every case of
//! the batch on stdin. Our side is `evalgate::eval` in process, with panics caught so that one
//! bad case is reported like any other difference.

use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use evalgate::eval::{Flags, evaluate};
use serde_json::{Value, json};

/// The `@amplitude/experiment-core` release the reference side must be running.
pub const JS_ENGINE_VERSION: &str = "0.13.6";

/// Cases per node process: large enough to amortise start-up, small enough to keep the pipe
/// documents a few megabytes.
const BATCH: usize = 2_500;

/// Shrinking stops after this many accepted reductions.
const MAX_SHRINK_STEPS: usize = 200;

const INSTALL_HINT: &str =
    "run `npm ci --prefix tests/conformance` (needs Node.js and npm; CI's .ci/run does this)";

/// One evaluation. Flags and context are JSON text handed verbatim to both engines, so a
/// hand-written case keeps its member order (which JS `JSON.stringify` observes).
#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub flags: String,
    pub context: String,
    pub flag_keys: Vec<String>,
}

impl Case {
    /// The case as one line of JSON, in the shape `eval.js` reads.
    pub fn to_json(&self) -> String {
        let keys = serde_json::to_string(&self.flag_keys).expect("keys serialize");
        format!(
            r#"{{"flags":{},"context":{},"flag_keys":{keys}}}"#,
            self.flags, self.context
        )
    }
}

/// What the JS engine said about a list of cases.
pub struct JsRun {
    pub results: Vec<Value>,
    /// Per-operator counters from `eval.js`, merged over batches.
    pub stats: Value,
}

/// A case on which the two engines disagree.
pub struct Mismatch {
    pub index: usize,
    pub js: Value,
    pub ours: Value,
}

fn conformance_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("conformance")
}

/// Fails the test, with the fix, when node or the pinned JS engine is missing.
fn require_reference() {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "conformance: `node --version` failed ({}); install Node.js, then {INSTALL_HINT}",
            out.status
        ),
        Err(e) => {
            panic!("conformance: cannot run `node` ({e}); install Node.js, then {INSTALL_HINT}")
        }
    }
    let manifest = conformance_dir().join("node_modules/@amplitude/experiment-core/package.json");
    assert!(
        manifest.is_file(),
        "conformance: the JS reference engine is not installed ({} is missing): {INSTALL_HINT}",
        manifest.display()
    );
}

/// Evaluates `cases` with the JS engine, one node process per batch.
pub fn run_js(cases: &[Case]) -> JsRun {
    require_reference();
    let mut results = Vec::with_capacity(cases.len());
    let mut stats = json!({"ops": {}, "hashes": 0});
    for batch in cases.chunks(BATCH) {
        let reply = run_node(batch);
        let batch_results = reply["results"]
            .as_array()
            .expect("eval.js replies with results");
        assert_eq!(
            batch_results.len(),
            batch.len(),
            "eval.js returned one result per case"
        );
        results.extend(batch_results.iter().cloned());
        merge_stats(&mut stats, &reply["stats"]);
    }
    JsRun { results, stats }
}

fn run_node(batch: &[Case]) -> Value {
    let mut input = String::from(r#"{"cases":["#);
    for (i, case) in batch.iter().enumerate() {
        if i > 0 {
            input.push(',');
        }
        input.push_str(&case.to_json());
    }
    input.push_str("]}");

    let dir = conformance_dir();
    let mut child = Command::new("node")
        .arg(dir.join("eval.js"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("conformance: cannot start node ({e}); {INSTALL_HINT}"));
    // Write from another thread: node may answer (or die) before reading everything.
    let mut stdin = child.stdin.take().expect("piped stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("wait for node");
    let written = writer.join().expect("stdin writer thread");
    assert!(
        output.status.success(),
        "conformance: node tests/conformance/eval.js failed ({}): {}\n{INSTALL_HINT} if a module is missing",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    written.expect("write the cases to node");
    let reply: Value =
        serde_json::from_slice(&output.stdout).expect("eval.js writes one JSON document");
    assert_eq!(
        reply["engine"], JS_ENGINE_VERSION,
        "conformance: tests/conformance/node_modules has the wrong @amplitude/experiment-core; {INSTALL_HINT}"
    );
    reply
}

fn merge_stats(into: &mut Value, from: &Value) {
    into["hashes"] =
        json!(into["hashes"].as_u64().unwrap_or(0) + from["hashes"].as_u64().unwrap_or(0));
    let Some(ops) = from["ops"].as_object() else {
        return;
    };
    for (op, counters) in ops {
        let entry = &mut into["ops"][op];
        for (name, n) in counters.as_object().into_iter().flatten() {
            entry[name] = json!(entry[name].as_u64().unwrap_or(0) + n.as_u64().unwrap_or(0));
        }
    }
}

/// Evaluates one case with `evalgate::eval`, in the shape `eval.js` uses: the result map, or
/// `{"error": "cycle"}` for a dependency cycle, or `{"error": "..."}` for anything else.
pub fn run_ours(case: &Case) -> Value {
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| {
        let flags = match Flags::from_json(case.flags.as_bytes()) {
            Ok(flags) => flags,
            Err(e) => return json!({"error": format!("Flags::from_json: {e}")}),
        };
        let context: Value = serde_json::from_str(&case.context).expect("case context is JSON");
        match evaluate(&flags, &context, &case.flag_keys) {
            Ok(results) => Value::Object(results),
            Err(e) if e.to_string().to_lowercase().contains("cycle") => json!({"error": "cycle"}),
            Err(e) => json!({"error": format!("evaluate: {e}")}),
        }
    }));
    outcome.unwrap_or_else(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("non-string panic");
        json!({"error": format!("panic: {message}")})
    })
}

/// JSON equality with every number compared as an f64 (JS prints `1.0` as `1`) and object
/// members in any order.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// What kind of error a result is, if it is one: `cycle`, `invalid regex` (JS `RegExp` throws;
/// the messages differ between engines), or the message itself.
fn error_kind(result: &Value) -> Option<&str> {
    let map = result.as_object().filter(|m| m.len() == 1)?;
    let message = map.get("error")?.as_str()?;
    Some(if message.contains("Invalid regular expression") {
        "invalid regex"
    } else {
        message
    })
}

/// Whether the engines agree: the same results, or the same kind of error.
pub fn agree(js: &Value, ours: &Value) -> bool {
    match (error_kind(js), error_kind(ours)) {
        (Some(a), Some(b)) => a == b,
        _ => same_json(js, ours),
    }
}

/// Evaluates every case with both engines; returns the JS run and the disagreements.
pub fn compare(cases: &[Case]) -> (JsRun, Vec<Mismatch>) {
    let js = run_js(cases);
    let mismatches = cases
        .iter()
        .zip(&js.results)
        .enumerate()
        .filter_map(|(index, (case, expected))| {
            let ours = run_ours(case);
            (!agree(expected, &ours)).then(|| Mismatch {
                index,
                js: expected.clone(),
                ours,
            })
        })
        .collect();
    (js, mismatches)
}

/// The flag keys whose results differ (every key when either side is an error).
fn differing_keys(js: &Value, ours: &Value) -> Vec<String> {
    let (Some(a), Some(b)) = (js.as_object(), ours.as_object()) else {
        return Vec::new();
    };
    let mut keys: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| !matches!((a.get(*k), b.get(*k)), (Some(x), Some(y)) if same_json(x, y)))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// A failure report: how many cases differ, which, and the first `shrink` of them in full,
/// each followed by a minimised version that still differs.
pub fn report(cases: &[Case], mismatches: &[Mismatch], shrink: usize) -> String {
    let mut out = String::new();
    let names: Vec<&str> = mismatches
        .iter()
        .take(20)
        .map(|m| cases[m.index].name.as_str())
        .collect();
    let _ = writeln!(
        out,
        "{} of {} cases differ from @amplitude/experiment-core {JS_ENGINE_VERSION}: {}{}",
        mismatches.len(),
        cases.len(),
        names.join(", "),
        if mismatches.len() > names.len() {
            ", …"
        } else {
            ""
        }
    );
    for mismatch in mismatches.iter().take(shrink.max(1)) {
        let case = &cases[mismatch.index];
        let _ = writeln!(out, "\n== {} ==", case.name);
        describe(&mut out, case, &mismatch.js, &mismatch.ours);
        if shrink > 0 {
            let (small, js, ours) = minimise(case, &mismatch.js, &mismatch.ours);
            let _ = writeln!(out, "-- minimised --");
            describe(&mut out, &small, &js, &ours);
        }
    }
    out
}

fn describe(out: &mut String, case: &Case, js: &Value, ours: &Value) {
    let _ = writeln!(out, "case:  {}", case.to_json());
    let _ = writeln!(out, "js:    {js}");
    let _ = writeln!(out, "ours:  {ours}");
    let keys = differing_keys(js, ours);
    if !keys.is_empty() {
        let _ = writeln!(out, "differing flags: {}", keys.join(", "));
    }
}

/// Greedy shrinking: repeatedly drop the largest piece of the case (a requested key, an array
/// element or an object member anywhere in flags or context) that keeps the engines
/// disagreeing the same way (neither side changing what kind of error it gives, if any).
fn minimise(case: &Case, js: &Value, ours: &Value) -> (Case, Value, Value) {
    let (js_error, ours_error) = (
        error_kind(js).map(str::to_owned),
        error_kind(ours).map(str::to_owned),
    );
    let mut best = (case.clone(), js.clone(), ours.clone());
    for _ in 0..MAX_SHRINK_STEPS {
        let candidates = reductions(&best.0);
        if candidates.is_empty() {
            break;
        }
        let run = run_js(&candidates);
        let next = candidates
            .into_iter()
            .zip(run.results)
            .find_map(|(candidate, js)| {
                let ours = run_ours(&candidate);
                let keeps = !agree(&js, &ours)
                    && error_kind(&js) == js_error.as_deref()
                    && error_kind(&ours) == ours_error.as_deref();
                keeps.then_some((candidate, js, ours))
            });
        match next {
            Some(smaller) => best = smaller,
            None => break,
        }
    }
    best.0.name = format!("{} (minimised)", case.name);
    best
}

#[derive(Clone)]
enum Step {
    Index(usize),
    Key(String),
}

/// Every case one removal smaller than `case`, largest removals first.
fn reductions(case: &Case) -> Vec<Case> {
    let (Ok(flags), Ok(context)) = (
        serde_json::from_str::<Value>(&case.flags),
        serde_json::from_str::<Value>(&case.context),
    ) else {
        return Vec::new();
    };
    let mut sized: Vec<(usize, Case)> = Vec::new();
    for i in 0..case.flag_keys.len() {
        let mut keys = case.flag_keys.clone();
        keys.remove(i);
        sized.push((
            1,
            Case {
                flag_keys: keys,
                ..case.clone()
            },
        ));
    }
    for (size, path) in removable(&flags) {
        let flags = removed(&flags, &path).to_string();
        sized.push((
            size,
            Case {
                flags,
                ..case.clone()
            },
        ));
    }
    for (size, path) in removable(&context) {
        let context = removed(&context, &path).to_string();
        sized.push((
            size,
            Case {
                context,
                ..case.clone()
            },
        ));
    }
    sized.sort_by_key(|(size, _)| std::cmp::Reverse(*size));
    sized.into_iter().map(|(_, c)| c).collect()
}

/// Paths to every array element and object member, with the size of what they hold.
fn removable(root: &Value) -> Vec<(usize, Vec<Step>)> {
    fn walk(value: &Value, path: &mut Vec<Step>, out: &mut Vec<(usize, Vec<Step>)>) {
        let children: Vec<(Step, &Value)> = match value {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| (Step::Index(i), v))
                .collect(),
            Value::Object(map) => map.iter().map(|(k, v)| (Step::Key(k.clone()), v)).collect(),
            _ => return,
        };
        for (step, child) in children {
            path.push(step);
            out.push((child.to_string().len(), path.clone()));
            walk(child, path, out);
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(root, &mut Vec::new(), &mut out);
    out
}

fn removed(root: &Value, path: &[Step]) -> Value {
    let mut copy = root.clone();
    let (last, parents) = path.split_last().expect("non-empty path");
    let mut node = &mut copy;
    for step in parents {
        node = match step {
            Step::Index(i) => &mut node[*i],
            Step::Key(k) => &mut node[k.as_str()],
        };
    }
    match (last, node) {
        (Step::Index(i), Value::Array(items)) => {
            items.remove(*i);
        }
        (Step::Key(k), Value::Object(map)) => {
            map.remove(k);
        }
        _ => unreachable!("paths come from removable()"),
    }
    copy
}

//! Amplitude's real SDK clients through evalgate.
//!
//! The upstream is evalgate's embedded evaluation engine (`evalgate::embedded::Embedded`,
//! loaded from a private copy of the shipped `flags.json`) served over HTTP by a bare
//! server in this file: no cache in front of it, so every request that reaches it is one
//! evaluation, counted by `Embedded::answered()` and recorded. The gateway under test is a
//! `TestGateway` whose `upstream.url` is that server.
//!
//! Each SDK is run twice with the same inputs: once pointed at the gateway, once straight
//! at the engine. The variants must be equal, and the engine's count shows which fetches
//! through the gateway were answered from its cache.
//!
//! Clients (pinned in `tests/clients/`):
//! - npm `@amplitude/experiment-node-server`: `RemoteEvaluationClient.fetchV2` (GET
//!   `/sdk/v2/vardata?v=0`, user in base64 `X-Amp-Exp-User`) and `LocalEvaluationClient`
//!   (GET `/sdk/v2/flags`, then `evaluateV2` in-process);
//! - PyPI `amplitude-experiment`: `RemoteEvaluationClient.fetch_v2` (POST
//!   `/sdk/v2/vardata?v=0`, user as the JSON body).
//!
//! Install once (CI's `.ci/run` does it):
//!
//! ```text
//! npm ci --prefix tests/clients
//! python3 -m pip install -r tests/clients/requirements.txt
//! ```
//!
//! A missing `node`, `python3`, `node_modules` or Python package fails the test with the
//! command to run; it never skips.

mod support;

use std::convert::Infallible;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use evalgate::embedded::Embedded;
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use support::*;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How long one SDK script may run.
const SCRIPT_DEADLINE: Duration = Duration::from_secs(60);

const NODE_INSTALL: &str = "npm ci --prefix tests/clients";
const PYTHON_INSTALL: &str = "python3 -m pip install -r tests/clients/requirements.txt";

// ---------------------------------------------------------------------------------------
// The upstream: the embedded engine over HTTP, uncached, recording what it receives.

/// A private copy of the shipped flags file, removed on drop.
struct FlagsCopy {
    dir: PathBuf,
}

impl FlagsCopy {
    fn new(name: &str) -> FlagsCopy {
        let dir = std::env::temp_dir().join(format!(
            "evalgate-sdk-clients-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(root().join("flags.json"), dir.join("flags.json")).unwrap();
        FlagsCopy { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("flags.json")
    }
}

impl Drop for FlagsCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One request as the engine received it.
#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path_and_query: String,
    headers: HeaderMap,
    body: Bytes,
}

/// `Embedded::answer` on 127.0.0.1:0.
struct EngineServer {
    addr: SocketAddr,
    engine: Embedded,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
    _flags: FlagsCopy,
}

impl EngineServer {
    async fn start(name: &str) -> EngineServer {
        let flags = FlagsCopy::new(name);
        // KEY is one of the engine's deployment keys, as in the embedded config.
        let engine = Embedded::load(&flags.path(), &[KEY.to_string()]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (e, s) = (engine.clone(), seen.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (e, s) = (e.clone(), s.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (e, s) = (e.clone(), s.clone());
                        async move { Ok::<_, Infallible>(answer(&e, &s, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        EngineServer {
            addr,
            engine,
            seen,
            task,
            _flags: flags,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far: one evaluation (or flags listing) each.
    fn answered(&self) -> u64 {
        self.engine.answered()
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for EngineServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    engine: &Embedded,
    seen: &Mutex<Vec<Seen>>,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    seen.lock().unwrap().push(Seen {
        method: parts.method.clone(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or("/".into(), |p| p.to_string()),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let answered = engine.answer(&Request::from_parts(parts, body));
    let mut response = Response::new(Full::new(answered.body));
    *response.status_mut() = answered.status;
    *response.headers_mut() = answered.headers;
    response
}

/// The engine, and a gateway in front of it.
struct Setup {
    engine: EngineServer,
    gateway: TestGateway,
}

impl Setup {
    async fn start(name: &str) -> Setup {
        let engine = EngineServer::start(name).await;
        let gateway = TestGateway::start(config_for(&engine.url())).await;
        Setup { engine, gateway }
    }

    /// The gateway's base URL, as the SDKs take it (no trailing slash).
    fn via_gateway(&self) -> String {
        format!("http://{}", self.gateway.addr)
    }

    fn direct(&self) -> String {
        self.engine.url()
    }
}

// ---------------------------------------------------------------------------------------
// Running the SDK scripts.

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn clients_dir() -> PathBuf {
    root().join("tests").join("clients")
}

/// The exact version `package.json` pins for the Node SDK.
fn pinned_node_version() -> String {
    let text = std::fs::read_to_string(clients_dir().join("package.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["dependencies"]["@amplitude/experiment-node-server"]
        .as_str()
        .expect("package.json pins @amplitude/experiment-node-server")
        .to_string()
}

/// The exact version `requirements.txt` pins for the Python SDK.
fn pinned_python_version() -> String {
    let text = std::fs::read_to_string(clients_dir().join("requirements.txt")).unwrap();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("amplitude-experiment=="))
        .expect("requirements.txt pins amplitude-experiment==<version>")
        .trim()
        .to_string()
}

fn require_node() {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`node` is not on PATH: install Node.js, then run `{NODE_INSTALL}`"
    );
    let installed = clients_dir()
        .join("node_modules")
        .join("@amplitude")
        .join("experiment-node-server")
        .join("package.json");
    assert!(
        installed.is_file(),
        "the Node SDK is not installed ({} is missing): run `{NODE_INSTALL}`",
        installed.display()
    );
}

fn require_python() {
    let probe = Command::new("python3")
        .args(["-c", "import amplitude_experiment"])
        .output();
    match probe {
        Err(e) => {
            panic!("`python3` cannot be run ({e}): install Python 3, then `{PYTHON_INSTALL}`")
        }
        Ok(o) if !o.status.success() => panic!(
            "the Python SDK is not installed (import amplitude_experiment failed: {}): run `{PYTHON_INSTALL}`",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(_) => {}
    }
}

/// Runs `program script spec` in tests/clients, within [`SCRIPT_DEADLINE`]; returns its
/// stdout parsed as JSON. Panics (failing the test) on a non-zero exit, a timeout, or
/// output that is not JSON.
fn run_script(program: &str, script: &str, spec: &Value) -> Value {
    let mut child = Command::new(program)
        .arg(script)
        .arg(spec.to_string())
        .current_dir(clients_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program} {script}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + SCRIPT_DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{program} {script} did not finish within {SCRIPT_DEADLINE:?}; stderr:\n{}",
                err.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap(), err.join().unwrap());
    assert!(
        status.success(),
        "{program} {script} failed ({status}) for spec {spec}\nstdout:\n{out}\nstderr:\n{err}"
    );
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("{program} {script} printed no JSON ({e}):\n{out}\n{err}"))
}

/// Runs `tests/clients/sdk.js` with `spec`; returns its `results`, having checked that the
/// pinned SDK version ran.
async fn node(spec: Value) -> Vec<Value> {
    require_node();
    let out = tokio::task::spawn_blocking(move || run_script("node", "sdk.js", &spec))
        .await
        .unwrap();
    assert_eq!(
        out["version"].as_str(),
        Some(pinned_node_version().as_str()),
        "installed Node SDK differs from package.json: run `{NODE_INSTALL}`"
    );
    out["results"].as_array().unwrap().clone()
}

/// Runs `tests/clients/sdk.py` with `spec`; returns its `results`, having checked that the
/// pinned SDK version ran.
async fn python(spec: Value) -> Vec<Value> {
    require_python();
    let out = tokio::task::spawn_blocking(move || run_script("python3", "sdk.py", &spec))
        .await
        .unwrap();
    assert_eq!(
        out["version"].as_str(),
        Some(pinned_python_version().as_str()),
        "installed Python SDK differs from requirements.txt: run `{PYTHON_INSTALL}`"
    );
    out["results"].as_array().unwrap().clone()
}

/// Drops `null` members everywhere: the Python SDK's `Variant` has every field (unset ones
/// `None`), the Node SDK's only the set ones.
fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// The requests the engine received after the first `skip`.
fn seen_since(engine: &EngineServer, skip: usize) -> Vec<Seen> {
    engine.seen().into_iter().skip(skip).collect()
}

/// The canonical form the gateway forwards every SDK vardata request in.
fn assert_canonical_vardata(s: &Seen) {
    assert_eq!(s.method, Method::POST, "{s:?}");
    assert_eq!(s.path_and_query, "/sdk/v2/vardata?v=0", "{s:?}");
    assert_eq!(s.headers["content-type"], "application/json", "{s:?}");
    assert_eq!(s.headers["authorization"], format!("Api-Key {KEY}"));
    assert!(s.headers.get("x-amp-exp-user").is_none(), "{s:?}");
    let user: Value = serde_json::from_slice(&s.body).expect("canonical user JSON");
    assert!(user.is_object(), "{s:?}");
}

// ---------------------------------------------------------------------------------------
// The tests.

fn pro_user(id: &str) -> Value {
    json!({
        "user_id": format!("u-{id}"),
        "device_id": format!("d-{id}"),
        "user_properties": { "plan": "pro" },
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn node_remote_client_gets_the_same_variants_and_repeats_are_hits() {
    let setup = Setup::start("node-remote").await;
    let subset = ["new-dashboard", "checkout-experiment"];
    let subset_again = [
        "checkout-experiment",
        "new-dashboard",
        "checkout-experiment",
    ];
    let spec = |server: String| {
        json!({
            "mode": "remote",
            "serverUrl": server,
            "key": KEY,
            "user": pro_user("node"),
            "fetches": [
                {},                                // 1: all flags: miss
                {},                                // 2: the same: hit
                { "flagKeys": subset },            // 3: two flags: miss
                { "flagKeys": subset_again },      // 4: same set, other order, a duplicate: hit
                { "tracksAssignment": false },     // 5: X-Amp-Exp-Track: no-track is keyed: miss
                { "tracksAssignment": false },     // 6: hit
            ],
        })
    };

    let via = node(spec(setup.via_gateway())).await;
    assert_eq!(
        setup.engine.answered(),
        3,
        "6 fetches through evalgate, 3 distinct: the repeats were answered from its cache"
    );
    let forwarded = setup.engine.seen();
    for s in &forwarded {
        assert_canonical_vardata(s);
    }
    // The SDK sends the subset as URL-safe base64 of ["new-dashboard","checkout-experiment"];
    // evalgate forwards the sorted list.
    let keys = forwarded[1].headers["x-amp-exp-flag-keys"]
        .to_str()
        .unwrap();
    let keys = evalgate::b64::decode(keys).unwrap();
    assert_eq!(keys, br#"["checkout-experiment","new-dashboard"]"#);
    assert_eq!(forwarded[2].headers["x-amp-exp-track"], "no-track");
    let user: Value = serde_json::from_slice(&forwarded[0].body).unwrap();
    assert!(
        user["library"]
            .as_str()
            .unwrap()
            .starts_with("experiment-node-server/"),
        "the SDK's own library field reaches the upstream: {user}"
    );

    let before = setup.engine.seen().len();
    let direct = node(spec(setup.direct())).await;
    let straight = seen_since(&setup.engine, before);
    assert_eq!(
        straight.len(),
        6,
        "the direct run reached the engine itself"
    );
    assert!(
        straight
            .iter()
            .all(|s| s.method == Method::GET && s.headers.contains_key("x-amp-exp-user")),
        "the Node SDK sends GET with X-Amp-Exp-User: {straight:?}"
    );

    assert_eq!(
        via, direct,
        "variants through evalgate = variants from the engine"
    );
    assert_eq!(via[0], via[1]);
    assert_eq!(via[2], via[3]);
    assert_eq!(via[0], via[4]);
    assert_eq!(via[0]["new-dashboard"]["key"], "on", "{}", via[0]);
    assert_eq!(
        via[0]["eu-cookie-banner"]["key"], "off",
        "fetchV2 keeps defaults"
    );
    let subset_result = via[2].as_object().unwrap();
    assert!(
        subset_result.contains_key("checkout-experiment")
            && subset_result.contains_key("new-dashboard")
    );
    assert!(
        !subset_result.contains_key("eu-cookie-banner"),
        "{}",
        via[2]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn node_exposure_tracking_fetches_bypass_the_cache() {
    let setup = Setup::start("node-exposure").await;
    let spec = |server: String| {
        json!({
            "mode": "remote",
            "serverUrl": server,
            "key": KEY,
            "user": pro_user("exposure"),
            "fetches": [{ "tracksExposure": true }, { "tracksExposure": true }],
        })
    };
    let via = node(spec(setup.via_gateway())).await;
    assert_eq!(
        setup.engine.answered(),
        2,
        "exposure-tracking fetches always reach the upstream"
    );
    for s in setup.engine.seen() {
        // Forwarded as sent: GET with the SDK's headers, exposure tracking included.
        assert_eq!(s.method, Method::GET);
        assert_eq!(s.path_and_query, "/sdk/v2/vardata?v=0");
        assert_eq!(s.headers["x-amp-exp-exposure-track"], "track");
        assert!(s.headers.contains_key("x-amp-exp-user"));
    }
    let direct = node(spec(setup.direct())).await;
    assert_eq!(via, direct);
}

#[tokio::test(flavor = "multi_thread")]
async fn node_local_client_fetches_flags_once_through_evalgate() {
    let setup = Setup::start("node-local").await;
    let spec = |server: String| {
        json!({
            "mode": "local",
            "serverUrl": server,
            "key": KEY,
            "user": pro_user("local"),
            "clients": 3,
        })
    };
    let via = node(spec(setup.via_gateway())).await;
    assert_eq!(
        setup.engine.answered(),
        1,
        "three clients started through evalgate: one flags fetch upstream, two hits"
    );
    let s = &setup.engine.seen()[0];
    assert_eq!(s.method, Method::GET);
    assert_eq!(s.path_and_query, "/sdk/v2/flags");
    assert_eq!(s.headers["authorization"], format!("Api-Key {KEY}"));
    assert!(
        s.headers.get("x-amp-exp-library").is_none(),
        "client headers are not forwarded"
    );

    let direct = node(spec(setup.direct())).await;
    assert_eq!(
        setup.engine.answered(),
        4,
        "the direct clients reached the engine"
    );
    assert_eq!(
        via, direct,
        "local evaluation on flags fetched through evalgate"
    );
    assert_eq!(via[0], via[2]);
    assert_eq!(via[0]["new-dashboard"]["key"], "on", "{}", via[0]);

    // The SDK's own engine on those flags agrees with evalgate's remote evaluation.
    let remote = node(json!({
        "mode": "remote",
        "serverUrl": setup.via_gateway(),
        "key": KEY,
        "user": pro_user("local"),
        "fetches": [{}],
    }))
    .await;
    assert_eq!(
        variant_keys(&via[0]),
        variant_keys(&remote[0]),
        "local {} vs remote {}",
        via[0],
        remote[0]
    );
}

/// `flag → variant key` of an SDK result.
fn variant_keys(result: &Value) -> Vec<(String, Value)> {
    let mut keys: Vec<(String, Value)> = result
        .as_object()
        .unwrap()
        .iter()
        .map(|(flag, v)| (flag.clone(), v["key"].clone()))
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn python_remote_client_gets_the_same_variants_and_repeats_are_hits() {
    let setup = Setup::start("python-remote").await;
    let subset = ["new-dashboard", "checkout-experiment"];
    let subset_again = ["checkout-experiment", "new-dashboard", "new-dashboard"];
    let spec = |server: String| {
        json!({
            "serverUrl": server,
            "key": KEY,
            "user": {
                "user_id": "u-py",
                "device_id": "d-py",
                "country": "DE",
                "user_properties": { "plan": "enterprise", "seats": 12 },
            },
            "fetches": [
                {},                                            // 1: miss
                {},                                            // 2: hit
                { "flagKeys": subset },                        // 3: miss
                { "flagKeys": subset_again },                  // 4: hit
                { "tracksAssignment": false },                 // 5: keyed on no-track: miss
                { "tracksAssignment": false, "tracksExposure": false }, // 6: no-track exposure is the default: hit
            ],
        })
    };
    let via = python(spec(setup.via_gateway())).await;
    assert_eq!(
        setup.engine.answered(),
        3,
        "6 fetches through evalgate, 3 distinct: the repeats were answered from its cache"
    );
    let forwarded = setup.engine.seen();
    for s in &forwarded {
        assert_canonical_vardata(s);
    }
    // The SDK sends every User attribute, nulls included; evalgate forwards the canonical
    // user: sorted, nulls dropped.
    let body = std::str::from_utf8(&forwarded[0].body).unwrap();
    assert!(!body.contains("null"), "{body}");
    assert!(
        body.starts_with(
            r#"{"country":"DE","device_id":"d-py","library":"experiment-python-server/"#
        ),
        "{body}"
    );

    let before = setup.engine.seen().len();
    let direct = python(spec(setup.direct())).await;
    let straight = seen_since(&setup.engine, before);
    assert_eq!(
        straight.len(),
        6,
        "the direct run reached the engine itself"
    );
    assert!(
        straight
            .iter()
            .all(|s| s.method == Method::POST && s.path_and_query == "/sdk/v2/vardata?v=0"),
        "the Python SDK POSTs: {straight:?}"
    );

    assert_eq!(
        via, direct,
        "variants through evalgate = variants from the engine"
    );
    assert_eq!(via[0], via[1]);
    assert_eq!(via[2], via[3]);
    assert_eq!(via[0]["new-dashboard"]["key"], "on", "{}", via[0]);
    assert_eq!(via[0]["dashboard-tour"]["payload"]["steps"][0], "widgets");
}

#[tokio::test(flavor = "multi_thread")]
async fn python_exposure_tracking_fetches_bypass_the_cache() {
    let setup = Setup::start("python-exposure").await;
    let spec = |server: String| {
        json!({
            "serverUrl": server,
            "key": KEY,
            "user": { "user_id": "u-px" },
            "fetches": [{ "tracksExposure": true }, { "tracksExposure": true }],
        })
    };
    let via = python(spec(setup.via_gateway())).await;
    assert_eq!(setup.engine.answered(), 2);
    for s in setup.engine.seen() {
        assert_eq!(s.method, Method::POST);
        assert_eq!(s.headers["x-amp-exp-exposure-track"], "track");
        assert!(
            std::str::from_utf8(&s.body).unwrap().contains("null"),
            "forwarded verbatim, the SDK's nulls included"
        );
    }
    assert_eq!(via, python(spec(setup.direct())).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_post_and_node_get_share_one_entry() {
    let setup = Setup::start("cross").await;
    // The same user from both SDKs: `library` set, so neither adds its own.
    let user = json!({
        "user_id": "u-both",
        "device_id": "d-both",
        "library": "evalgate-tests/1",
        "user_properties": { "plan": "pro" },
    });
    let py = python(json!({
        "serverUrl": setup.via_gateway(),
        "key": KEY,
        "user": user,
        "fetches": [{}],
    }))
    .await;
    assert_eq!(setup.engine.answered(), 1);
    let js = node(json!({
        "mode": "remote",
        "serverUrl": setup.via_gateway(),
        "key": KEY,
        "user": user,
        "fetches": [{}],
    }))
    .await;
    assert_eq!(
        setup.engine.answered(),
        1,
        "Node's GET (base64 header) hit the entry Python's POST (JSON body, nulls) filled"
    );
    assert_eq!(strip_nulls(&py[0]), strip_nulls(&js[0]));
}

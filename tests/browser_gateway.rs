//! Browsers calling evalgate directly (issue 16): headless Chromium (Debian's `chromium`,
//! driven by `playwright-core` in `tests/browser/gateway_pages.js`) opens pages served over
//! HTTPS from another origin (`https://localhost:<port>`, a page server in the driver),
//! which call evalgate over HTTPS (`tls.*`, a certificate each test generates with the
//! `openssl` CLI, trusted by Chromium through `--ignore-certificate-errors-spki-list`)
//! with CORS (`cors.allowed_origins` = the page's origin). evalgate evaluates with its
//! embedded engine and the shipped `flags.json`.
//!
//! Needs `/usr/bin/chromium` (`apt-get install -y chromium`), `openssl` (Debian package
//! `openssl`) and `npm ci --prefix tests/browser` (`playwright-core` and the SDK); fails,
//! naming what to install, when one is missing. `scripts/test` installs them all.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use bytes::Bytes;
use evalgate::embedded::Embedded;
use serde_json::{Value, json};
use support::certs::{Issued, TestCa};
use support::https::TlsGateway;
use support::redis::process::TempDir;
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

/// A client-side deployment key: the kind a web page carries.
const BROWSER_KEY: &str = "client-evalgate-browser-key";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Bound on each browser run: proves "does not hang", never a speed requirement.
const NO_HANG: Duration = Duration::from_secs(90);

/// What one test needs on disk: a test CA's certificate for `localhost` and `127.0.0.1`
/// with its key (evalgate's and the page server's), and a private copy of the shipped
/// flags file; removed on drop.
struct Fixture {
    dir: TempDir,
    issued: Issued,
}

impl Fixture {
    fn new(name: &str) -> Fixture {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(
            Path::new(CHROMIUM).exists(),
            "{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
        );
        for package in ["playwright-core", "@amplitude/experiment-js-client"] {
            assert!(
                root.join("tests/browser/node_modules")
                    .join(package)
                    .exists(),
                "{package} is missing: install it with `npm ci --prefix tests/browser`"
            );
        }
        let dir = TempDir::new(&format!("browser-{name}"));
        std::fs::copy(root.join("flags.json"), dir.path().join("flags.json")).unwrap();
        let issued = TestCa::new(dir.path()).issue(1);
        Fixture { dir, issued }
    }

    fn flags_file(&self) -> PathBuf {
        self.dir.path().join("flags.json")
    }
}

/// The browser driver, started: its page server is up, Chromium not yet.
struct Browser {
    child: Child,
    stdout: BufReader<ChildStdout>,
    page_port: u16,
}

impl Browser {
    /// Starts the driver's page server with the fixture's certificate.
    async fn start(fixture: &Fixture) -> Browser {
        let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/gateway_pages.js");
        let mut child = Command::new("node")
            .arg(driver)
            .arg(&fixture.issued.cert)
            .arg(&fixture.issued.key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node (install Node.js)");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        tokio::time::timeout(NO_HANG, stdout.read_line(&mut line))
            .await
            .expect("the page server starts")
            .unwrap();
        let started: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{e}: the driver printed {line:?}"));
        let page_port = started["page_port"].as_u64().expect("page_port") as u16;
        Browser {
            child,
            stdout,
            page_port,
        }
    }

    /// The origin evalgate allows; `https://127.0.0.1:<port>` is the same page server on
    /// an origin it does not allow.
    fn allowed_origin(&self) -> String {
        format!("https://localhost:{}", self.page_port)
    }

    /// Opens each `(page, origin)` visit against `gateway` and returns the driver's report,
    /// one entry per visit. On timeout the driver is dropped and `kill_on_drop` kills it.
    async fn visit(mut self, gateway: &str, user: &str, visits: &[(&str, &str)]) -> Vec<Value> {
        let visits: Vec<Value> = visits
            .iter()
            .map(|(page, origin)| json!({"page": page, "origin": origin}))
            .collect();
        let settings =
            json!({"gateway": gateway, "key": BROWSER_KEY, "user": user, "visits": visits});
        let mut stdin = self.child.stdin.take().unwrap();
        stdin
            .write_all(format!("{settings}\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        let mut stderr = self.child.stderr.take().unwrap();
        let run = async {
            let mut out = String::new();
            let mut err = String::new();
            let (read_out, read_err) = tokio::join!(
                self.stdout.read_to_string(&mut out),
                stderr.read_to_string(&mut err)
            );
            read_out.unwrap();
            read_err.unwrap();
            (self.child.wait().await.unwrap(), out, err)
        };
        let (status, out, err) = tokio::time::timeout(NO_HANG, run)
            .await
            .expect("the browser run finishes");
        assert!(status.success(), "gateway_pages.js failed: {err}");
        let report: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out:?} {err}"));
        report["visits"].as_array().expect("visits").clone()
    }
}

/// evalgate over HTTPS with the fixture's certificate, allowing `allowed_origin`, answering
/// from its embedded engine; also on cleartext (`gw.plain`) for the test's own requests.
/// Returns the gateway and its HTTPS origin.
async fn start_gateway(fixture: &Fixture, allowed_origin: &str) -> (TlsGateway, String) {
    let mut config = config_for("embedded");
    config.admin.listen = String::new();
    config.embedded.flags_file = fixture.flags_file().display().to_string();
    config.embedded.deployment_keys = vec![BROWSER_KEY.into()];
    config.cors.allowed_origins = vec![allowed_origin.to_string()];
    config.tls.listen = "127.0.0.1:0".into();
    config.tls.cert_file = fixture.issued.cert.display().to_string();
    config.tls.key_file = fixture.issued.key.display().to_string();
    let gw = TlsGateway::start(config, true).await;
    let origin = format!("https://127.0.0.1:{}", gw.tls.port());
    (gw, origin)
}

/// The variants of a v1 `/v1/vardata` or v2 `/sdk/v2/vardata` body, as flag → variant key.
fn variant_keys(body: &Value) -> Value {
    body.as_object()
        .expect("a JSON object")
        .iter()
        .map(|(flag, v)| (flag.clone(), v["key"].clone()))
        .collect()
}

/// Each flag's evaluated variant (key, value, payload, metadata) in a v2 body or in the
/// SDK's `all()`, which is the v2 body plus the `expKey` the SDK derives.
fn evaluated(variants: &Value) -> Value {
    variants
        .as_object()
        .expect("a JSON object")
        .iter()
        .map(|(flag, v)| {
            let fields: serde_json::Map<String, Value> = ["key", "value", "payload", "metadata"]
                .iter()
                .map(|f| (f.to_string(), v[*f].clone()))
                .collect();
            (flag.clone(), Value::Object(fields))
        })
        .collect()
}

/// (1) A page's `fetch` of `GET /v1/vardata` with `Authorization` (preflighted) shows the
/// variants; the same call again is a HIT, read from `X-Cache` through
/// `Access-Control-Expose-Headers`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_fetch_shows_the_variants_and_the_second_call_is_a_hit() {
    let fixture = Fixture::new("fetch");
    let browser = Browser::start(&fixture).await;
    let (gw, gateway) = start_gateway(&fixture, &browser.allowed_origin()).await;

    let visits = browser
        .visit(&gateway, "page-user", &[("fetch.html", "allowed")])
        .await;
    let fetch = &visits[0];
    assert_eq!(fetch["page_errors"], json!([]), "{fetch}");
    let calls = fetch["result"]["calls"].as_array().expect("calls");
    assert_eq!(calls.len(), 2, "{fetch}");
    assert_eq!(calls[0]["status"], 200, "{fetch}");
    assert_eq!(calls[0]["x_cache"], "MISS", "{fetch}");
    assert_eq!(calls[1]["status"], 200, "{fetch}");
    assert_eq!(calls[1]["x_cache"], "HIT", "{fetch}");
    assert!(calls[1]["age"].is_string(), "Age is exposed: {fetch}");
    // The shipped flags: `new-dashboard` is on for plan "pro".
    assert_eq!(calls[0]["variants"]["new-dashboard"], "on", "{fetch}");
    assert_eq!(calls[0]["variants"], calls[1]["variants"], "{fetch}");

    // The page asked evalgate twice, with its key; the answers are the gateway's answers
    // to the same request from here.
    let requests = fetch["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "{fetch}");
    assert_eq!(
        requests[0]["headers"]["authorization"],
        format!("Api-Key {BROWSER_KEY}"),
        "{fetch}"
    );
    let path = requests[0]["url"]
        .as_str()
        .unwrap()
        .trim_start_matches(&gateway);
    let direct = send(
        &client(),
        http::Method::GET,
        &format!("http://{}{path}", gw.plain.unwrap()),
        &[("authorization", &format!("Api-Key {BROWSER_KEY}"))],
        "",
    )
    .await;
    assert_eq!(direct.x_cache(), "HIT");
    assert_eq!(variant_keys(&direct.json()), calls[0]["variants"]);
    gw.shutdown().await;
}

/// (2) Amplitude's browser SDK, its npm package's browser bundle loaded by the page, with
/// `serverUrl` and `flagsServerUrl` pointed at evalgate, gets for its user exactly the
/// variants the embedded engine answers to the same request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_sdk_gets_the_engines_variants() {
    let fixture = Fixture::new("sdk");
    let browser = Browser::start(&fixture).await;
    let (gw, gateway) = start_gateway(&fixture, &browser.allowed_origin()).await;

    let visits = browser
        .visit(&gateway, "sdk-user", &[("sdk.html", "allowed")])
        .await;
    let sdk = &visits[0];
    assert_eq!(sdk["page_errors"], json!([]), "{sdk}");
    assert_eq!(sdk["result"]["error"], Value::Null, "{sdk}");
    assert_eq!(
        sdk["elsewhere"],
        json!([]),
        "only evalgate was asked: {sdk}"
    );
    let variants = &sdk["result"]["variants"];
    assert_eq!(variants["new-dashboard"]["value"], "on", "{sdk}");

    // The user as the SDK sent it (with the context it adds: library, platform, …).
    let requests = sdk["requests"].as_array().unwrap();
    let fetch = requests
        .iter()
        .find(|r| r["url"].as_str().unwrap().contains("/sdk/v2/vardata"))
        .unwrap_or_else(|| panic!("the SDK fetched variants: {sdk}"));
    assert_eq!(fetch["method"], "GET", "{sdk}");
    let user_header = fetch["headers"]["x-amp-exp-user"].as_str().unwrap();
    let user: Value =
        serde_json::from_slice(&evalgate::b64::decode(user_header).expect("base64")).unwrap();
    assert_eq!(user["user_id"], "sdk-user", "{sdk}");
    assert_eq!(user["user_properties"]["plan"], "pro", "{sdk}");

    // `start` also fetched the flag configurations, through evalgate as well.
    let flags = requests
        .iter()
        .find(|r| r["url"].as_str().unwrap().ends_with("/sdk/v2/flags"))
        .unwrap_or_else(|| panic!("the SDK fetched flags: {sdk}"));
    assert_eq!(flags["method"], "GET", "{sdk}");
    assert!(
        flags["headers"]["x-amp-exp-library"]
            .as_str()
            .unwrap()
            .starts_with("experiment-js-client/"),
        "{sdk}"
    );

    // What the engine answers to the same request, asked directly.
    let engine = Embedded::load(&fixture.flags_file(), &[BROWSER_KEY.to_string()]).unwrap();
    let mut direct = http::Request::builder().uri("/sdk/v2/vardata?v=0");
    for (name, value) in fetch["headers"].as_object().unwrap() {
        direct = direct.header(name.as_str(), value.as_str().unwrap());
    }
    let answer = engine.answer(&direct.body(Bytes::new()).unwrap());
    assert_eq!(answer.status, 200);
    let expected: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(evaluated(variants), evaluated(&expected), "{sdk}");
    gw.shutdown().await;
}

/// (3) A page on an origin evalgate does not allow: the browser blocks the call and the
/// page sees the failure, while the same page on the allowed origin gets its answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disallowed_origin_is_blocked_and_the_page_sees_the_failure() {
    let fixture = Fixture::new("blocked");
    let browser = Browser::start(&fixture).await;
    let allowed_origin = browser.allowed_origin();
    let (gw, gateway) = start_gateway(&fixture, &allowed_origin).await;

    let visits = browser
        .visit(
            &gateway,
            "blocked-user",
            &[("fetch.html", "other"), ("fetch.html", "allowed")],
        )
        .await;
    let (other, allowed) = (&visits[0], &visits[1]);
    assert!(
        other["origin"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "{other}"
    );
    for call in other["result"]["calls"].as_array().unwrap() {
        assert_eq!(call["error"], "TypeError: Failed to fetch", "{other}");
    }
    assert_eq!(
        other["result"]["calls"].as_array().unwrap().len(),
        2,
        "{other}"
    );
    // evalgate answered the preflights (without CORS headers), and the browser sent no GET
    // after them: every answer it received was a preflight's.
    let answers = other["protocols"].as_array().unwrap();
    assert!(!answers.is_empty(), "{other}");
    assert!(answers.iter().all(|a| a["status"] == 204), "{other}");
    // The control: the same page, the allowed origin.
    assert_eq!(allowed["origin"], allowed_origin, "{allowed}");
    let calls = allowed["result"]["calls"].as_array().unwrap();
    assert_eq!(calls[0]["status"], 200, "{allowed}");
    assert_eq!(calls[0]["variants"]["new-dashboard"], "on", "{allowed}");
    gw.shutdown().await;
}

/// (4) The page talks HTTP/2 to evalgate: Chromium negotiates `h2` by ALPN for the
/// preflight and both calls, as its network stack reports (DevTools' `protocol` of each
/// answer). The page's own Resource Timing (`nextHopProtocol`) says "" here: Chromium
/// hides it from a cross-origin page unless the answer carries `Timing-Allow-Origin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_talks_http2_to_evalgate() {
    let fixture = Fixture::new("h2");
    let browser = Browser::start(&fixture).await;
    let (gw, gateway) = start_gateway(&fixture, &browser.allowed_origin()).await;

    let visits = browser
        .visit(&gateway, "h2-user", &[("fetch.html", "allowed")])
        .await;
    let fetch = &visits[0];
    let calls = fetch["result"]["calls"].as_array().unwrap();
    assert_eq!(calls[0]["status"], 200, "{fetch}");
    assert_eq!(calls[1]["status"], 200, "{fetch}");
    // The preflight (204), the MISS and the HIT, in whatever order DevTools reports
    // them (the preflight's event may come after the answer it cleared).
    let answers = fetch["protocols"].as_array().unwrap();
    let mut statuses: Vec<u64> = answers
        .iter()
        .filter_map(|a| a["status"].as_u64())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 204], "{fetch}");
    assert!(answers.iter().all(|a| a["protocol"] == "h2"), "{fetch}");
    // What the page itself may see: "h2", or "" where Chromium hides it.
    for seen in fetch["result"]["protocols"].as_array().unwrap() {
        assert!(seen == "h2" || seen == "", "{fetch}");
    }
    gw.shutdown().await;
}

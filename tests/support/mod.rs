//! Test support: a scriptable in-test upstream and a gateway, both on 127.0.0.1:0.
#![allow(dead_code)]

pub mod certs;
pub mod cli;
pub mod fleet;
pub mod https;
pub mod raw_http;
pub mod redis;
pub mod tier_fleet;
pub mod workload;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use evalgate::Config;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;

/// Deployment keys the fake upstream accepts.
pub const KEY: &str = "server-test-key-0001";
pub const KEY2: &str = "server-test-key-0002";

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path_and_query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What the fake upstream does; change it at any time through [`FakeUpstream`].
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Delay before answering.
    pub delay: Duration,
    /// Answer this status (with a small JSON body) instead of evaluating.
    pub status: Option<StatusCode>,
    /// Answer this raw body with status 200 and `text/plain` instead of evaluating.
    pub raw_body: Option<&'static str>,
    /// Answer 200 `application/json` with exactly these body bytes and this
    /// `Content-Encoding` ("" for none) instead of evaluating.
    pub encoded_body: Option<(&'static str, Bytes)>,
    /// The status `encoded_body` comes with (200 when unset).
    pub encoded_status: Option<StatusCode>,
    /// `Cache-Control` on `/v1/vardata` 200s.
    pub cache_control: Option<&'static str>,
    /// Written into every `/v1/vardata` 200 body: bump it to change the answers.
    pub version: u64,
    /// Close the connection instead of answering.
    pub reset: bool,
    /// Announce a longer body than is sent, so the connection dies mid-body.
    pub cut_body: bool,
    /// `/sdk/v2/flags` answers these flags (key, flagVersion) for [`KEY`] instead of the
    /// echo; [`KEY2`] always gets one fixed flag.
    pub flags: Option<Vec<(&'static str, u64)>>,
    /// `/sdk/v2/flags` answers 500.
    pub flags_fail: bool,
    /// Requests whose path and query contain this are held (received and counted, not
    /// answered) until [`FakeUpstream::release_held`].
    pub hold: Option<&'static str>,
    /// Header fields added to every answer (e.g. the upstream's own CORS headers).
    pub headers: Vec<(&'static str, &'static str)>,
}

struct State {
    count: AtomicUsize,
    requests: Mutex<Vec<Recorded>>,
    script: Mutex<Script>,
    keys: HashSet<String>,
    arrived: Notify,
    /// Upcoming requests to reset (drop the connection) before answering.
    resets_left: AtomicUsize,
    /// Connections accepted so far, and open now (with a signal when one closes).
    accepted: AtomicUsize,
    open: AtomicUsize,
    closed: Notify,
    /// Requests being handled now (from arrival until answered or dropped with their
    /// connection), the most at once so far, and a signal when one ends.
    active: AtomicUsize,
    peak: AtomicUsize,
    ended: Notify,
    /// Held requests go on once this is set.
    released: std::sync::atomic::AtomicBool,
    release: Notify,
}

/// One request being handled, counted in [`State::active`] until dropped.
struct Active<'a>(&'a State);

impl<'a> Active<'a> {
    fn enter(state: &'a State) -> Active<'a> {
        let now = state.active.fetch_add(1, Ordering::SeqCst) + 1;
        state.peak.fetch_max(now, Ordering::SeqCst);
        Active(state)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.ended.notify_waiters();
    }
}

/// A real HTTP upstream on 127.0.0.1:0 that counts and records what it receives.
///
/// `GET /v1/vardata` answers like the evaluation API: 401 (`text/plain`, `WWW-Authenticate`)
/// without a known `Api-Key`, 400 (`text/plain`) when `context` is not a JSON object,
/// else 200 with a JSON body that echoes the canonical request it was asked, so any two
/// different upstream requests get different bodies. Other paths echo method, path, query
/// and body as `{"method", "path_and_query", "body"}`; on the flag-configuration paths
/// (`/sdk/v2/flags`, `/v1/flags`) that echo is wrapped in a JSON array, the shape flag
/// configurations have.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        Self::start_on(TcpListener::bind("127.0.0.1:0").await.unwrap()).await
    }

    /// Starts on a given listener (to restart on the same port).
    pub async fn start_on(listener: TcpListener) -> FakeUpstream {
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            count: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            script: Mutex::new(Script::default()),
            keys: [KEY, KEY2].into_iter().map(String::from).collect(),
            arrived: Notify::new(),
            resets_left: AtomicUsize::new(0),
            accepted: AtomicUsize::new(0),
            open: AtomicUsize::new(0),
            closed: Notify::new(),
            active: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            ended: Notify::new(),
            released: Default::default(),
            release: Notify::new(),
        });
        let (stop, mut stopped) = oneshot::channel::<()>();
        let st = state.clone();
        let task = tokio::spawn(async move {
            let mut conns = Vec::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        st.accepted.fetch_add(1, Ordering::SeqCst);
                        st.open.fetch_add(1, Ordering::SeqCst);
                        let st = st.clone();
                        conns.push(tokio::spawn(async move {
                            let conn_state = st.clone();
                            let svc = service_fn(move |req| {
                                let st = st.clone();
                                async move { answer(&st, req).await }
                            });
                            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                            conn_state.open.fetch_sub(1, Ordering::SeqCst);
                            conn_state.closed.notify_waiters();
                        }));
                    }
                }
            }
            for c in conns {
                c.abort();
            }
        });
        FakeUpstream {
            addr,
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests received so far.
    pub fn count(&self) -> usize {
        self.state.count.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .last()
            .cloned()
            .expect("a request reached the upstream")
    }

    pub fn script(&self, script: Script) {
        *self.state.script.lock().unwrap() = script;
    }

    /// Drops the connection of the next `n` requests instead of answering them.
    pub fn reset_next(&self, n: usize) {
        self.state.resets_left.store(n, Ordering::SeqCst);
    }

    /// Requests received for `path` (without query).
    pub fn count_path(&self, path: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.path_and_query.split('?').next() == Some(path))
            .count()
    }

    /// Changes the script in place.
    pub fn update(&self, change: impl FnOnce(&mut Script)) {
        change(&mut self.state.script.lock().unwrap());
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.script.lock().unwrap().delay = delay;
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.state.open.load(Ordering::SeqCst)
    }

    /// Waits until at most `n` connections are open.
    pub async fn wait_open_at_most(&self, n: usize) {
        loop {
            let closed = self.state.closed.notified();
            if self.open_connections() <= n {
                return;
            }
            closed.await;
        }
    }

    /// Waits until at least `n` requests have arrived.
    pub async fn wait_for(&self, n: usize) {
        loop {
            let notified = self.state.arrived.notified();
            if self.count() >= n {
                return;
            }
            notified.await;
        }
    }

    /// Requests being handled now (received, neither answered nor dropped).
    pub fn active(&self) -> usize {
        self.state.active.load(Ordering::SeqCst)
    }

    /// The most requests handled at once so far.
    pub fn peak(&self) -> usize {
        self.state.peak.load(Ordering::SeqCst)
    }

    /// Waits until at most `n` requests are being handled.
    pub async fn wait_active_at_most(&self, n: usize) {
        loop {
            let ended = self.state.ended.notified();
            if self.active() <= n {
                return;
            }
            ended.await;
        }
    }

    /// Lets every held request (see [`Script::hold`]) go on, now and from now on.
    pub fn release_held(&self) {
        self.state.released.store(true, Ordering::SeqCst);
        self.state.release.notify_waiters();
    }

    /// Stops accepting and drops every open connection.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Answers one request as scripted; `Err` makes hyper drop the connection (a reset).
async fn answer(
    state: &State,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let _active = Active::enter(state);
    let script = state.script.lock().unwrap().clone();
    let mut response = evaluate(state, req, &script).await;
    for (name, value) in &script.headers {
        response
            .headers_mut()
            .append(*name, http::HeaderValue::from_static(value));
    }
    let reset_once = state
        .resets_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if script.reset || reset_once {
        return Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "scripted reset",
        ));
    }
    if script.cut_body {
        let promised = response.body().size_hint().exact().unwrap_or(0) + 100;
        response
            .headers_mut()
            .insert("content-length", promised.into());
    }
    Ok(response)
}

async fn evaluate(state: &State, req: Request<Incoming>, script: &Script) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let recorded = Recorded {
        method: parts.method.clone(),
        path_and_query: parts
            .uri
            .path_and_query()
            .map_or("/".into(), |p| p.to_string()),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    state.requests.lock().unwrap().push(recorded.clone());
    state.count.fetch_add(1, Ordering::SeqCst);
    state.arrived.notify_waiters();
    if script
        .hold
        .is_some_and(|h| recorded.path_and_query.contains(h))
    {
        loop {
            let released = state.release.notified();
            if state.released.load(Ordering::SeqCst) {
                break;
            }
            released.await;
        }
    }
    if !script.delay.is_zero() {
        tokio::time::sleep(script.delay).await;
    }
    if let Some(status) = script.status {
        return respond(
            status,
            "application/json",
            format!("{{\"scripted\":{}}}", status.as_u16()),
        );
    }
    if let Some(raw) = script.raw_body {
        return respond(StatusCode::OK, "text/plain", raw.to_string());
    }
    if let Some((coding, body)) = &script.encoded_body {
        let mut r = Response::new(Full::new(body.clone()));
        *r.status_mut() = script.encoded_status.unwrap_or(StatusCode::OK);
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        if !coding.is_empty() {
            r.headers_mut()
                .insert("content-encoding", coding.parse().unwrap());
        }
        return r;
    }
    if parts.uri.path() == "/sdk/v2/flags" && script.flags_fail {
        return respond(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            "{}".into(),
        );
    }
    if let (Some(flags), "/sdk/v2/flags") = (&script.flags, parts.uri.path()) {
        let for_key2 = parts
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some(&format!("Api-Key {KEY2}"));
        let fixed = [("fixed", 1)];
        let flags: &[(&str, u64)] = if for_key2 { &fixed } else { flags };
        let flags: Vec<_> = flags
            .iter()
            .map(|(k, v)| serde_json::json!({"key": k, "metadata": {"flagVersion": v}, "segments": [], "variants": {}}))
            .collect();
        return respond(
            StatusCode::OK,
            "application/json",
            serde_json::Value::Array(flags).to_string(),
        );
    }
    if parts.uri.path() != "/v1/vardata" {
        let echo = serde_json::json!({
            "method": recorded.method.as_str(),
            "path_and_query": recorded.path_and_query,
            "body": String::from_utf8_lossy(&body),
        });
        // Flag configurations are JSON arrays: the echo comes wrapped in one there.
        let echo = if matches!(parts.uri.path(), "/sdk/v2/flags" | "/v1/flags") {
            serde_json::json!([echo])
        } else {
            echo
        };
        let mut r = respond(StatusCode::OK, "application/json", echo.to_string());
        r.headers_mut()
            .insert("x-upstream-header", "kept".parse().unwrap());
        return r;
    }
    let key = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Api-Key "))
        .filter(|k| state.keys.contains(*k));
    let Some(key) = key else {
        let mut r = respond(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "Invalid deployment key\n".into(),
        );
        r.headers_mut()
            .insert("www-authenticate", "Api-Key".parse().unwrap());
        return r;
    };
    let query = parts.uri.query().unwrap_or("");
    let params: Vec<(String, String)> = form_pairs(query);
    if let Some((_, context)) = params.iter().find(|(n, _)| n == "context")
        && !matches!(
            serde_json::from_str::<serde_json::Value>(context),
            Ok(serde_json::Value::Object(_))
        )
    {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "Invalid context JSON\n".into(),
        );
    }
    let echo = serde_json::json!({
        "flag-echo": {
            "key": "on",
            "payload": {
                "key": key,
                "query": query,
                "track": parts.headers.get("x-amp-exp-track").and_then(|v| v.to_str().ok()),
                "version": script.version,
            }
        }
    });
    let mut r = respond(StatusCode::OK, "application/json", echo.to_string());
    if let Some(cc) = script.cache_control {
        r.headers_mut().insert("cache-control", cc.parse().unwrap());
    }
    r
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    r
}

/// Minimal form decoding for the fake upstream (strict UTF-8 not needed here).
fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (n, v) = s.split_once('=').unwrap_or((s, ""));
            (
                evalgate::normalize::form::decode(n).unwrap().into_owned(),
                evalgate::normalize::form::decode(v).unwrap().into_owned(),
            )
        })
        .collect()
}

/// A gateway on 127.0.0.1:0, stopped on drop or by [`TestGateway::shutdown`].
pub struct TestGateway {
    pub addr: SocketAddr,
    /// The admin listener, when started by [`TestGateway::start_with_admin`].
    pub admin: Option<SocketAddr>,
    pub readiness: Option<evalgate::admin::Readiness>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A config pointing at `upstream`, with defaults otherwise.
pub fn config_for(upstream_url: &str) -> Config {
    let mut config = Config::default();
    config.upstream.url = upstream_url.to_string();
    config.server.listen = "127.0.0.1:0".into();
    config.admin.listen = "127.0.0.1:0".into();
    // The freshness extras (stale serving, negative caching of 401) are off unless a test
    // turns them on, so every other test sees plain TTL caching: stored 200s only.
    config.cache.stale_while_revalidate_s = 0;
    config.cache.stale_if_error_s = 0;
    config.cache.negative_ttl_s = 0;
    // `EVALGATE_TEST_PIPELINE_DEPTH=8 cargo test` runs every test with cache fills on
    // pipelined upstream connections.
    if let Some(depth) = std::env::var("EVALGATE_TEST_PIPELINE_DEPTH")
        .ok()
        .and_then(|d| d.parse().ok())
    {
        config.upstream.pipeline_depth = depth;
    }
    config
}

impl TestGateway {
    pub async fn start(config: Config) -> TestGateway {
        let config = config.validate().expect("test config is valid");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            evalgate::run(listener, config, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        TestGateway {
            addr,
            admin: None,
            readiness: None,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Serves a gateway built by the caller (to keep a handle on its parts).
    pub async fn start_gateway(gateway: evalgate::Gateway) -> TestGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            evalgate::serve(listener, gateway, async {
                let _ = stopped.await;
            })
            .await;
        });
        TestGateway {
            addr,
            admin: None,
            readiness: None,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Serves `gateway` with its admin listener, both on 127.0.0.1:0.
    pub async fn start_with_admin(gateway: evalgate::Gateway) -> TestGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let admin = evalgate::AdminServer::new(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let admin_addr = admin.local_addr().unwrap();
        let readiness = admin.readiness();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            evalgate::serve_with_admin(listener, Some(admin), gateway, async {
                let _ = stopped.await;
            })
            .await;
        });
        TestGateway {
            addr,
            admin: Some(admin_addr),
            readiness: Some(readiness),
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("http://{}{}", self.addr, path_and_query)
    }

    /// A URL on the admin listener.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin.expect("started with admin"), path)
    }

    /// Signals shutdown without waiting for the server to return.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Signals shutdown and waits for the server to return.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A response as the test client saw it.
#[derive(Debug, Clone)]
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// A pooled HTTP/1.1 client.
pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request with the given headers and reads the whole response.
pub async fn send(
    client: &Client<HttpConnector, Full<Bytes>>,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Got {
    let mut builder = Request::builder().method(method).uri(url);
    for (n, v) in headers {
        builder = builder.header(*n, *v);
    }
    let req = builder
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let res = client.request(req).await.expect("gateway answers");
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// `GET` with `Authorization: Api-Key <key>`.
pub async fn get_with_key(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    key: &str,
) -> Got {
    let auth = format!("Api-Key {key}");
    send(client, Method::GET, url, &[("authorization", &auth)], "").await
}

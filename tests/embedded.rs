//! The gateway in front of its embedded evaluation engine (`upstream.url = "embedded"`):
//! the same hit/miss, coalescing and 400/401 behaviour as in front of an HTTP upstream,
//! the SDK routes answered (and cached) through the gateway, and flag-file reloads.

mod support;

use std::path::{Path, PathBuf};

use evalgate::Config;
use http::Method;
use support::*;

const DEMO_KEY: &str = "server-evalgate-demo-key";

/// A private copy of the shipped flags file, removed on drop.
struct TempFlags {
    dir: PathBuf,
}

impl TempFlags {
    fn new(name: &str) -> TempFlags {
        let dir =
            std::env::temp_dir().join(format!("evalgate-embedded-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("flags.json");
        std::fs::copy(shipped, dir.join("flags.json")).unwrap();
        TempFlags { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("flags.json")
    }
}

impl Drop for TempFlags {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn embedded_config(flags: &TempFlags) -> Config {
    let mut config = config_for("embedded");
    config.embedded.flags_file = flags.path().display().to_string();
    config.embedded.deployment_keys = vec![DEMO_KEY.into(), KEY.into()];
    config.embedded.reload_interval_ms = 20;
    config
}

/// The shipped config.toml, as `cargo run --release` reads it, on a free port.
fn shipped_config() -> Config {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config = Config::from_file(&root.join("config.toml")).unwrap();
    config.resolve_paths(root);
    config.server.listen = "127.0.0.1:0".into();
    config.admin.listen = "127.0.0.1:0".into();
    config
}

#[tokio::test]
async fn shipped_config_answers_real_evaluations() {
    let gw = TestGateway::start(shipped_config()).await;
    let c = client();
    let ctx = "%7B%22user_properties%22%3A%7B%22plan%22%3A%22pro%22%7D%7D";
    let url = gw.url(&format!(
        "/v1/vardata?user_id=u1&device_id=d1&context={ctx}"
    ));
    let got = get_with_key(&c, &url, DEMO_KEY).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.x_cache(), "MISS");
    let body = got.json();
    assert_eq!(body["new-dashboard"]["key"], "on");
    assert_eq!(body["dashboard-tour"]["key"], "on");
    assert_eq!(body["dashboard-tour"]["payload"]["steps"][0], "widgets");
    let variant = body["checkout-experiment"]["key"].as_str().unwrap();
    assert!(variant == "control" || variant == "treatment", "{body}");
    assert_eq!(body["checkout-experiment"]["expKey"], "exp-checkout-1");
    assert!(
        body.get("eu-cookie-banner").is_none(),
        "default variants are dropped from v1: {body}"
    );

    let again = get_with_key(&c, &url, DEMO_KEY).await;
    assert_eq!(again.x_cache(), "HIT");
    assert_eq!(again.body, got.body);

    // A free user: the release flag and its dependent are off, hence absent in v1.
    let free = get_with_key(
        &c,
        &gw.url("/v1/vardata?device_id=d1&flag_key=dashboard-tour"),
        DEMO_KEY,
    )
    .await;
    assert_eq!(free.status, 200);
    assert_eq!(free.json(), serde_json::json!({}));
}

#[tokio::test]
async fn status_semantics_match_the_real_service() {
    let flags = TempFlags::new("status");
    let gw = TestGateway::start(embedded_config(&flags)).await;
    let c = client();
    let missing = send(&c, Method::GET, &gw.url("/v1/vardata?user_id=u"), &[], "").await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.x_cache(), "BYPASS");
    let unknown = get_with_key(&c, &gw.url("/v1/vardata?user_id=u"), "server-nope").await;
    assert_eq!(unknown.status, 401);
    assert_eq!(unknown.x_cache(), "MISS");
    assert_eq!(unknown.json()["error"], "invalid deployment key");
    let bad = get_with_key(&c, &gw.url("/v1/vardata?user_id=u&context=%7Bnope"), KEY).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.x_cache(), "BYPASS");
    let not_object = get_with_key(&c, &gw.url("/v1/vardata?user_id=u&context=%5B1%5D"), KEY).await;
    assert_eq!(not_object.status, 400);
    // Neither error was stored: asking again is answered by the engine again.
    let again = get_with_key(&c, &gw.url("/v1/vardata?user_id=u"), "server-nope").await;
    assert_eq!(again.x_cache(), "MISS");
}

#[tokio::test]
async fn concurrent_identical_misses_make_one_evaluation() {
    let flags = TempFlags::new("coalesce");
    let config = embedded_config(&flags);
    let gateway = evalgate::Gateway::new(config.clone().validate().unwrap()).unwrap();
    let engine = gateway.upstream().as_embedded().unwrap().clone();
    let gw = TestGateway::start_gateway(gateway).await;
    let url = gw.url("/v1/vardata?user_id=burst&device_id=d9");
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            get_with_key(&client(), &url, KEY).await
        }));
    }
    let mut bodies = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.status, 200);
        bodies.push(got.body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    // One evaluation for all 200: later arrivals joined the flight or hit the entry.
    assert_eq!(engine.answered(), 1);
}

#[tokio::test]
async fn sdk_routes_are_answered_through_the_gateway() {
    let flags = TempFlags::new("sdk");
    let gw = TestGateway::start(embedded_config(&flags)).await;
    let c = client();
    let auth = format!("Api-Key {KEY}");
    // {"device_id":"d1","user_properties":{"plan":"pro"}}, URL-safe base64 without padding.
    let user = "eyJkZXZpY2VfaWQiOiJkMSIsInVzZXJfcHJvcGVydGllcyI6eyJwbGFuIjoicHJvIn19";
    let v2 = send(
        &c,
        Method::GET,
        &gw.url("/sdk/v2/vardata?v=0"),
        &[("authorization", &auth), ("x-amp-exp-user", user)],
        "",
    )
    .await;
    assert_eq!(v2.status, 200);
    let body = v2.json();
    assert_eq!(body["new-dashboard"]["key"], "on");
    assert_eq!(
        body["eu-cookie-banner"]["key"], "off",
        "v2 includes default variants"
    );
    assert_eq!(body["eu-cookie-banner"]["metadata"]["default"], true);
    let post = send(
        &c,
        Method::POST,
        &gw.url("/sdk/v2/vardata?v=0"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        r#"{"device_id":"d1","user_properties":{"plan":"pro"}}"#,
    )
    .await;
    assert_eq!(
        post.json(),
        body,
        "GET with a header and POST with a body agree"
    );
    let flags_json = get_with_key(&c, &gw.url("/sdk/v2/flags?v=0"), KEY).await;
    assert_eq!(flags_json.status, 200);
    assert_eq!(flags_json.json().as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn a_changed_flags_file_is_served_and_drops_cached_answers() {
    let flags = TempFlags::new("reload");
    let gw = TestGateway::start(embedded_config(&flags)).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=u&flag_key=dashboard-tour&context=%7B%22user_properties%22%3A%7B%22plan%22%3A%22pro%22%7D%7D");
    let first = get_with_key(&c, &url, KEY).await;
    assert_eq!(first.json()["dashboard-tour"]["key"], "on");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");

    // A broken file is rejected and the old flags keep serving (from the cache, too).
    std::fs::write(flags.path(), b"[{\"key\": ").unwrap();
    let still = wait_until(&c, &url, |g| g.x_cache() == "HIT", 20).await;
    assert_eq!(still.json()["dashboard-tour"]["key"], "on");

    // A valid change: the tour's payload changes; the cached answer must go.
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("flags.json")).unwrap();
    std::fs::write(flags.path(), text.replace("\"sharing\"", "\"export\"")).unwrap();
    let fresh = wait_until(&c, &url, |g| g.x_cache() == "MISS", 500).await;
    assert_eq!(
        fresh.json()["dashboard-tour"]["payload"]["steps"][2],
        "export"
    );
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");
}

/// Asks `url` until `done` holds (each attempt is a real request; the reload poll runs
/// every 20 ms, so this is bounded by `attempts`, not by time).
async fn wait_until(
    c: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    url: &str,
    done: impl Fn(&Got) -> bool,
    attempts: usize,
) -> Got {
    for _ in 0..attempts {
        let got = get_with_key(c, url, KEY).await;
        if done(&got) {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition not reached after {attempts} attempts");
}

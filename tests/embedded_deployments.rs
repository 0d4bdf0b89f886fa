//! Several deployments in embedded mode (`[[embedded.deployments]]`): each key sees its
//! own file's flags, each file reloads on its own, and a reload drops only the answers of
//! the deployments served from that file.

mod support;

use std::path::{Path, PathBuf};

use evalgate::Config;
use evalgate::config::EmbeddedDeployment;
use support::*;

/// A directory with `a.json` (the shipped flags, for [`KEY`]) and `b.json` (one flag of
/// its own, for [`KEY2`]); removed on drop.
struct TwoFiles {
    dir: PathBuf,
}

const B_FLAGS: &str = r#"[{"key": "b-only", "metadata": {"flagVersion": 1},
  "segments": [{"variant": "on"}], "variants": {"on": {"key": "on", "payload": "v1"}}}]"#;

impl TwoFiles {
    fn new(name: &str) -> TwoFiles {
        let dir = std::env::temp_dir().join(format!(
            "evalgate-deployments-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.json"), shipped()).unwrap();
        std::fs::write(dir.join("b.json"), B_FLAGS).unwrap();
        TwoFiles { dir }
    }

    fn a(&self) -> PathBuf {
        self.dir.join("a.json")
    }

    fn b(&self) -> PathBuf {
        self.dir.join("b.json")
    }

    fn config(&self) -> Config {
        let mut config = config_for("embedded");
        config.embedded.deployment_keys = Vec::new();
        config.embedded.reload_interval_ms = 20;
        config.embedded.deployments = vec![
            EmbeddedDeployment {
                key: KEY.into(),
                flags_file: self.a().display().to_string(),
            },
            EmbeddedDeployment {
                key: KEY2.into(),
                flags_file: self.b().display().to_string(),
            },
        ];
        config
    }
}

impl Drop for TwoFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn shipped() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("flags.json")).unwrap()
}

fn flag_keys(got: &Got) -> Vec<String> {
    let mut keys: Vec<String> = got
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

/// A pro user asking for the tour (in A's flags) and B's flag.
const VARDATA: &str = "/v1/vardata?user_id=u&flag_keys=dashboard-tour,b-only&context=%7B%22user_properties%22%3A%7B%22plan%22%3A%22pro%22%7D%7D";

#[tokio::test]
async fn each_key_sees_only_its_own_flags() {
    let files = TwoFiles::new("isolation");
    let gw = TestGateway::start(files.config().validate().unwrap()).await;
    let c = client();
    let a = get_with_key(&c, &gw.url("/sdk/v2/flags?v=0"), KEY).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        flag_keys(&a),
        [
            "checkout-experiment",
            "dashboard-tour",
            "eu-cookie-banner",
            "new-dashboard"
        ]
    );
    let b = get_with_key(&c, &gw.url("/sdk/v2/flags?v=0"), KEY2).await;
    assert_eq!(flag_keys(&b), ["b-only"]);

    let a = get_with_key(&c, &gw.url(VARDATA), KEY).await;
    assert_eq!(a.json()["dashboard-tour"]["key"], "on");
    assert!(a.json().get("b-only").is_none(), "{}", a.json());
    let b = get_with_key(&c, &gw.url(VARDATA), KEY2).await;
    assert_eq!(
        b.json(),
        serde_json::json!({"b-only": {"key": "on", "payload": "v1"}})
    );

    for key in ["server-evalgate-demo-key", "server-nope"] {
        let unknown = get_with_key(&c, &gw.url(VARDATA), key).await;
        assert_eq!(unknown.status, 401, "{key}");
        assert_eq!(unknown.json()["error"], "invalid deployment key");
    }
}

#[tokio::test]
async fn a_bad_file_keeps_its_flags_and_a_good_one_drops_only_its_answers() {
    let files = TwoFiles::new("reload");
    let gw = TestGateway::start(files.config().validate().unwrap()).await;
    let c = client();
    let url = gw.url(VARDATA);
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");
    assert_eq!(get_with_key(&c, &url, KEY2).await.x_cache(), "MISS");
    assert_eq!(get_with_key(&c, &url, KEY2).await.x_cache(), "HIT");

    // A's file turns bad, then B's changes: B's change is served (its answer recomputed)...
    std::fs::write(files.a(), b"[{\"key\": ").unwrap();
    std::fs::write(files.b(), B_FLAGS.replace("\"v1\"", "\"v2-changed\"")).unwrap();
    let b = wait_until(&c, &url, KEY2, |g| g.x_cache() == "MISS", 500).await;
    assert_eq!(b.json()["b-only"]["payload"], "v2-changed");
    // ...while A keeps its old flags: its cached answer, and a new evaluation.
    let a = get_with_key(&c, &url, KEY).await;
    assert_eq!(a.x_cache(), "HIT");
    assert_eq!(a.json()["dashboard-tour"]["key"], "on");
    let fresh = get_with_key(&c, &gw.url(&format!("{VARDATA}&device_id=d2")), KEY).await;
    assert_eq!(fresh.x_cache(), "MISS");
    assert_eq!(
        fresh.json()["dashboard-tour"]["payload"]["steps"][2],
        "sharing"
    );
    assert_eq!(get_with_key(&c, &url, KEY2).await.x_cache(), "HIT");

    // A good new A: served, A's cached answers dropped, B's kept.
    std::fs::write(files.a(), shipped().replace("\"sharing\"", "\"export\"")).unwrap();
    let a = wait_until(&c, &url, KEY, |g| g.x_cache() == "MISS", 500).await;
    assert_eq!(a.json()["dashboard-tour"]["payload"]["steps"][2], "export");
    let b = get_with_key(&c, &url, KEY2).await;
    assert_eq!(b.x_cache(), "HIT", "B's answer survives A's reload");
    assert_eq!(b.json()["b-only"]["payload"], "v2-changed");
}

#[tokio::test]
async fn stats_list_each_file_with_its_flags_and_masked_keys() {
    let files = TwoFiles::new("stats");
    let gateway = evalgate::Gateway::new(files.config().validate().unwrap()).unwrap();
    let gw = TestGateway::start_with_admin(gateway).await;
    let stats = send(
        &client(),
        http::Method::GET,
        &gw.admin_url("/admin/stats"),
        &[],
        "",
    )
    .await;
    assert_eq!(stats.status, 200);
    let embedded = stats.json()["embedded"].clone();
    let files_seen = embedded.as_array().unwrap();
    assert_eq!(files_seen.len(), 2, "{embedded}");
    assert_eq!(files_seen[0]["flags_file"], files.a().display().to_string());
    assert_eq!(files_seen[0]["flags"], 4);
    assert_eq!(files_seen[0]["deployments"], serde_json::json!(["…0001"]));
    assert_eq!(files_seen[1]["flags"], 1);
    assert_eq!(files_seen[1]["deployments"], serde_json::json!(["…0002"]));
    assert!(!stats.body.windows(KEY.len()).any(|w| w == KEY.as_bytes()));
}

#[test]
fn a_bad_file_at_start_up_is_a_config_error_naming_the_setting() {
    let files = TwoFiles::new("startup");
    std::fs::write(files.b(), b"{}").unwrap();
    let err = evalgate::Gateway::new(files.config().validate().unwrap())
        .err()
        .expect("a bad file is refused");
    let msg = err.to_string();
    assert!(msg.starts_with("`embedded.deployments`"), "{msg}");
    assert!(msg.contains("b.json"), "{msg}");
}

/// Asks `url` with `key` until `done` holds (each attempt is a real request; the reload
/// poll runs every 20 ms, so this is bounded by `attempts`, not by time).
async fn wait_until(
    c: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    url: &str,
    key: &str,
    done: impl Fn(&Got) -> bool,
    attempts: usize,
) -> Got {
    for _ in 0..attempts {
        let got = get_with_key(c, url, key).await;
        if done(&got) {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("condition not reached after {attempts} attempts");
}

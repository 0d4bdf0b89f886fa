//! The admin status page in a real browser: headless Chromium (Debian's `chromium`)
//! driven by `playwright-core` (`tests/browser/admin_page.js`) over a gateway with the
//! embedded engine. The page's numbers update after traffic, and its "try it" form shows
//! the variants, `X-Cache` and `Age`. With `EVALGATE_UPDATE_SCREENSHOT=1` the page's
//! screenshot replaces `docs/admin.png` (the README's); otherwise it goes to a temp dir.
//!
//! Needs `/usr/bin/chromium` (`apt-get install -y chromium`) and
//! `npm ci --prefix tests/browser`; fails, naming the command, when either is missing.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use evalgate::Gateway;
use support::*;
use tokio::process::Command;

const DEMO_KEY: &str = "server-evalgate-demo-key";
const CHROMIUM: &str = "/usr/bin/chromium";
/// Bound on the whole browser run: proves "does not hang", never a speed requirement.
const NO_HANG: Duration = Duration::from_secs(90);

/// A private copy of the shipped flags file, removed on drop.
struct TempFlags(PathBuf);

impl TempFlags {
    fn new() -> TempFlags {
        let dir = std::env::temp_dir().join(format!("evalgate-browser-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("flags.json");
        std::fs::copy(shipped, dir.join("flags.json")).unwrap();
        TempFlags(dir)
    }
}

impl Drop for TempFlags {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_updates_and_try_it_shows_variants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let driver = root.join("tests/browser");
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install it with `apt-get install -y chromium`"
    );
    assert!(
        driver.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: install it with `npm ci --prefix tests/browser`"
    );

    let flags = TempFlags::new();
    let mut config = config_for("embedded");
    config.embedded.flags_file = flags.0.join("flags.json").display().to_string();
    config.embedded.deployment_keys = vec![DEMO_KEY.into()];
    let gateway = Gateway::new(config.validate().unwrap()).unwrap();
    let gw = TestGateway::start_with_admin(gateway).await;

    // Some traffic for the page to show: one miss and three hits.
    let c = client();
    for _ in 0..4 {
        let got = get_with_key(&c, &gw.url("/v1/vardata?user_id=page-user"), DEMO_KEY).await;
        assert_eq!(got.status, 200);
    }

    let screenshot = if std::env::var_os("EVALGATE_UPDATE_SCREENSHOT").is_some() {
        root.join("docs/admin.png")
    } else {
        flags.0.join("admin.png")
    };
    let child = Command::new("node")
        .arg(driver.join("admin_page.js"))
        .arg(gw.admin_url("/"))
        .arg(&screenshot)
        .arg(DEMO_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node (install Node.js)");
    // On timeout the child is dropped, and `kill_on_drop` kills it by its handle.
    let out = tokio::time::timeout(NO_HANG, child.wait_with_output())
        .await
        .expect("the browser run finishes")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "admin_page.js failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));

    assert_eq!(report["errors"], serde_json::json!([]), "{report}");
    let before = &report["before"];
    assert_eq!(before["requests_total"], 4, "{report}");
    assert_eq!(before["hit_ratio"], "75.0 %", "{report}");
    assert!(before["cache_entries"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(before["deployments"], 1, "{report}");
    let after = &report["after"];
    assert!(after["requests_total"].as_u64().unwrap() >= 6, "{report}");

    let tries = report["tries"].as_array().unwrap();
    assert_eq!(tries[0]["status"], "200", "{report}");
    assert_eq!(tries[0]["x_cache"], "MISS", "{report}");
    assert_eq!(tries[0]["age"], "0", "{report}");
    assert_eq!(tries[1]["x_cache"], "HIT", "{report}");
    // The shipped flags: `new-dashboard` is on for plan "pro".
    assert_eq!(tries[0]["variants"]["new-dashboard"], "on", "{report}");
    assert_eq!(tries[0]["variants"], tries[1]["variants"], "{report}");
    assert!(screenshot.exists());

    gw.shutdown().await;
}

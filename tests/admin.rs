//! The admin listener: metrics that move with traffic and stay bounded, readiness through
//! shutdown, the admin token, `/admin/stats`, `/admin/try`, SIGHUP's live settings and
//! the access log. Everything on 127.0.0.1:0.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use evalgate::{Config, Gateway};
use http::{Method, StatusCode};
use support::*;
use tokio::time::timeout;

/// Generous bound proving "does not hang", never a speed requirement.
const NO_HANG: Duration = Duration::from_secs(10);

async fn start(config: Config) -> TestGateway {
    let gateway = Gateway::new(config.validate().unwrap()).unwrap();
    TestGateway::start_with_admin(gateway).await
}

async fn admin_get(gw: &TestGateway, path: &str, token: Option<&str>) -> Got {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    send(&client(), Method::GET, &gw.admin_url(path), &headers, "").await
}

/// The Prometheus text exposition as `name{labels}` → value (comments skipped).
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("`series value`");
            (series.to_string(), value.parse().expect("a number"))
        })
        .collect()
}

async fn scrape(gw: &TestGateway) -> HashMap<String, f64> {
    let got = admin_get(gw, "/metrics", None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(
        got.header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    parse(std::str::from_utf8(&got.body).unwrap())
}

fn value(metrics: &HashMap<String, f64>, series: &str) -> f64 {
    *metrics
        .get(series)
        .unwrap_or_else(|| panic!("no series {series}"))
}

fn requests(m: &HashMap<String, f64>, route: &str, cache: &str) -> f64 {
    value(
        m,
        &format!(r#"evalgate_requests_total{{route="{route}",cache="{cache}"}}"#),
    )
}

#[tokio::test]
async fn metrics_move_with_hits_misses_bypasses_and_errors() {
    let upstream = FakeUpstream::start().await;
    let gw = start(config_for(&upstream.url())).await;
    let c = client();
    let before = scrape(&gw).await;
    assert_eq!(requests(&before, "v1_vardata", "MISS"), 0.0);

    let url = gw.url("/v1/vardata?user_id=m1");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");
    let bypass = get_with_key(&c, &gw.url("/some/other/path"), KEY).await;
    assert_eq!(bypass.x_cache(), "BYPASS");
    upstream.script(Script {
        status: Some(StatusCode::SERVICE_UNAVAILABLE),
        ..Script::default()
    });
    let failed = get_with_key(&c, &gw.url("/v1/vardata?user_id=m2"), KEY).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    let huge = "x".repeat(40 * 1024);
    let too_big = send(&c, Method::GET, &url, &[("x-big", &huge)], "").await;
    assert_eq!(too_big.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);

    let m = scrape(&gw).await;
    assert_eq!(requests(&m, "v1_vardata", "MISS"), 2.0);
    assert_eq!(requests(&m, "v1_vardata", "HIT"), 2.0);
    assert_eq!(requests(&m, "other", "BYPASS"), 1.0);
    assert_eq!(requests(&m, "v1_vardata", "NONE"), 1.0);
    assert_eq!(value(&m, r#"evalgate_responses_total{class="2xx"}"#), 4.0);
    assert_eq!(value(&m, r#"evalgate_responses_total{class="4xx"}"#), 1.0);
    assert_eq!(value(&m, r#"evalgate_responses_total{class="5xx"}"#), 1.0);
    assert_eq!(
        value(&m, r#"evalgate_upstream_requests_total{outcome="2xx"}"#),
        2.0
    );
    assert_eq!(
        value(&m, r#"evalgate_upstream_requests_total{outcome="5xx"}"#),
        1.0
    );
    assert_eq!(value(&m, "evalgate_upstream_duration_seconds_count"), 3.0);
    assert_eq!(value(&m, "evalgate_hit_duration_seconds_count"), 2.0);
    assert_eq!(
        value(&m, r#"evalgate_hit_duration_seconds_bucket{le="+Inf"}"#),
        2.0
    );
    assert_eq!(value(&m, "evalgate_upstream_inflight"), 0.0);
    assert!(value(&m, "evalgate_cache_entries") >= 1.0);
    assert!(value(&m, "evalgate_cache_weighted_bytes") > 0.0);
    assert!(m.contains_key(r#"evalgate_cache_evictions_total{cause="size"}"#));
    // Both segments apart: only answers were stored.
    let segment = |name: &str, s: &str| {
        value(
            &m,
            &format!(r#"evalgate_cache_segment_{name}{{segment="{s}"}}"#),
        )
    };
    assert_eq!(
        segment("weighted_bytes", "answers"),
        value(&m, "evalgate_cache_weighted_bytes")
    );
    assert_eq!(segment("entries", "flags"), 0.0);
    assert_eq!(
        segment("capacity_bytes", "answers") + segment("capacity_bytes", "flags"),
        value(&m, "evalgate_cache_capacity_bytes")
    );
    assert!(segment("capacity_bytes", "flags") > 0.0);
}

#[tokio::test]
async fn label_sets_stay_bounded_under_random_paths_and_keys() {
    let upstream = FakeUpstream::start().await;
    let gw = start(config_for(&upstream.url())).await;
    let c = client();
    let before: BTreeSet<String> = scrape(&gw).await.into_keys().collect();
    for i in 0..200u32 {
        // Cheap varied values without an RNG dependency.
        let r = i.wrapping_mul(2_654_435_761);
        let key = format!("server-random-{r:08x}");
        let url = match i % 4 {
            0 => gw.url(&format!("/rand/{r:x}/{i}?q={r}")),
            1 => gw.url(&format!("/v1/vardata?user_id=rand{r}&flag_key=f{i}")),
            2 => gw.url(&format!("/sdk/v2/flags?flag_keys=k{r}")),
            _ => gw.url(&format!("/v1/vardata/{r}")),
        };
        get_with_key(&c, &url, &key).await;
    }
    let after = scrape(&gw).await;
    let series: BTreeSet<String> = after.keys().cloned().collect();
    assert_eq!(series, before, "the same label sets before and after");
    assert!(series.len() < 150, "{} series", series.len());
    assert!(
        !series
            .iter()
            .any(|s| s.contains("rand") || s.contains("server-"))
    );
    assert_eq!(
        (requests(&after, "other", "BYPASS") as u32)
            + (requests(&after, "v1_vardata", "MISS") as u32),
        150
    );
}

#[tokio::test]
async fn readiness_turns_503_when_shutdown_starts_and_in_flight_requests_finish() {
    let upstream = FakeUpstream::start().await;
    upstream.set_delay(Duration::from_secs(1));
    let mut gw = start(config_for(&upstream.url())).await;
    let ready = admin_get(&gw, "/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK, "{:?}", ready.json());
    assert_eq!(ready.json()["upstream"], "unknown");

    let url = gw.url("/v1/vardata?user_id=slow");
    let slow = tokio::spawn(async move { get_with_key(&client(), &url, KEY).await });
    upstream.wait_for(1).await;
    gw.begin_shutdown();
    let readiness = gw.readiness.clone().unwrap();
    timeout(NO_HANG, readiness.draining())
        .await
        .expect("draining starts");
    let draining = admin_get(&gw, "/readyz", None).await;
    assert_eq!(draining.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(draining.json()["draining"], true);
    assert_eq!(
        admin_get(&gw, "/healthz", None).await.status,
        StatusCode::OK
    );

    let got = timeout(NO_HANG, slow).await.expect("finishes").unwrap();
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.x_cache(), "MISS");
    timeout(NO_HANG, gw.shutdown()).await.expect("stops");
}

#[tokio::test]
async fn readiness_fails_while_the_upstream_does_not_answer() {
    // A port with nothing listening: connections are refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let gw = start(config_for(&url)).await;
    let got = get_with_key(&client(), &gw.url("/v1/vardata?user_id=u"), KEY).await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    let ready = admin_get(&gw, "/readyz", None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json()["upstream"], "failing");
    let m = scrape(&gw).await;
    assert_eq!(
        value(&m, r#"evalgate_upstream_requests_total{outcome="connect"}"#),
        1.0
    );
}

#[tokio::test]
async fn admin_token_is_enforced_except_on_health() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.admin.token = "s3cret-token".into();
    let gw = start(config).await;
    for path in ["/metrics", "/admin/stats", "/"] {
        for token in [None, Some("wrong"), Some("s3cret-toke")] {
            let got = admin_get(&gw, path, token).await;
            assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{path} {token:?}");
            assert!(got.json()["error"].is_string());
            assert_eq!(got.header("www-authenticate"), Some("Bearer"));
        }
        let got = admin_get(&gw, path, Some("s3cret-token")).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
    }
    let tried = send(
        &client(),
        Method::POST,
        &gw.admin_url("/admin/try"),
        &[],
        r#"{"deployment_key":"k"}"#,
    )
    .await;
    assert_eq!(tried.status, StatusCode::UNAUTHORIZED);
    for path in ["/healthz", "/readyz"] {
        assert_eq!(admin_get(&gw, path, None).await.status, StatusCode::OK);
    }
    let missing = admin_get(&gw, "/nope", Some("s3cret-token")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.json()["error"].is_string());
}

#[tokio::test]
async fn stats_report_ratios_latency_and_only_masked_keys() {
    let upstream = FakeUpstream::start().await;
    let gw = start(config_for(&upstream.url())).await;
    let c = client();
    for _ in 0..4 {
        get_with_key(&c, &gw.url("/v1/vardata?user_id=hot"), KEY).await;
    }
    get_with_key(&c, &gw.url("/v1/vardata?user_id=cold"), KEY2).await;
    let stats = admin_get(&gw, "/admin/stats", None).await;
    assert_eq!(stats.status, StatusCode::OK);
    let text = String::from_utf8(stats.body.to_vec()).unwrap();
    assert!(!text.contains(KEY) && !text.contains(KEY2), "{text}");
    assert!(!text.contains("hot") && !text.contains("cold"), "{text}");
    let s = stats.json();
    assert_eq!(s["requests"]["hits"], 3);
    assert_eq!(s["requests"]["misses"], 2);
    assert_eq!(s["hit_ratio"], 0.6);
    let deployments = s["deployments"].as_array().unwrap();
    assert_eq!(deployments[0]["deployment"], "…0001");
    assert_eq!(deployments[0]["hit_ratio"], 0.75);
    assert_eq!(deployments[1]["deployment"], "…0002");
    let top = &s["top_keys"][0];
    assert_eq!(top["hits"], 3);
    assert_eq!(top["route"], "v1_vardata");
    assert_eq!(top["deployment"], "…0001");
    assert_eq!(top["key"].as_str().unwrap().len(), 8);
    assert_eq!(s["upstream"]["latency_ms"]["count"], 2);
    assert!(s["upstream"]["latency_ms"]["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(s["cache"]["entries"].as_u64().unwrap() >= 1);
    let segments = &s["cache"]["segments"];
    assert_eq!(segments["answers"]["entries"], s["cache"]["entries"]);
    assert_eq!(segments["flags"]["entries"], 0);
    assert_eq!(
        segments["answers"]["capacity_bytes"].as_u64().unwrap()
            + segments["flags"]["capacity_bytes"].as_u64().unwrap(),
        s["cache"]["capacity_bytes"].as_u64().unwrap()
    );
}

#[tokio::test]
async fn try_it_goes_through_the_gateway_and_is_cached() {
    let upstream = FakeUpstream::start().await;
    let gw = start(config_for(&upstream.url())).await;
    let form = serde_json::json!({
        "user_id": "try-user",
        "device_id": "d1",
        "flag_keys": "b, a",
        "context": "{\"user_properties\": {\"plan\": \"pro\"}}",
        "deployment_key": KEY,
    })
    .to_string();
    let url = gw.admin_url("/admin/try");
    let first = send(&client(), Method::POST, &url, &[], &form).await;
    assert_eq!(first.status, StatusCode::OK);
    let first = first.json();
    assert_eq!(first["status"], 200);
    assert_eq!(first["x_cache"], "MISS");
    assert_eq!(first["age"], "0");
    assert_eq!(first["body"]["flag-echo"]["key"], "on");
    let query = first["body"]["flag-echo"]["payload"]["query"]
        .as_str()
        .unwrap();
    assert!(query.contains("user_id=try-user"), "{query}");

    let second = send(&client(), Method::POST, &url, &[], &form).await.json();
    assert_eq!(second["x_cache"], "HIT");
    // The same question from a real client hits the entry the form stored.
    let ctx = "%7B%22user_properties%22%3A%7B%22plan%22%3A%22pro%22%7D%7D";
    let real = get_with_key(
        &client(),
        &gw.url(&format!(
            "/v1/vardata?device_id=d1&flag_key=a,b&user_id=try-user&context={ctx}"
        )),
        KEY,
    )
    .await;
    assert_eq!(real.x_cache(), "HIT");
    assert_eq!(upstream.count(), 1);

    let bad = send(
        &client(),
        Method::POST,
        &url,
        &[],
        r#"{"deployment_key": "k", "context": "[1]"}"#,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.json()["error"].is_string());
}

#[tokio::test]
async fn reload_applies_live_keys_and_reports_the_others() {
    let upstream = FakeUpstream::start().await;
    let config = config_for(&upstream.url());
    let gw_config = config.clone().validate().unwrap();
    let gateway = Gateway::new(gw_config.clone()).unwrap();
    let gw = TestGateway::start_with_admin(gateway.clone()).await;
    assert_eq!(
        admin_get(&gw, "/metrics", None).await.status,
        StatusCode::OK
    );

    let mut changed = gw_config.clone();
    changed.admin.token = "new-token".into();
    changed.cache.ttl_s = 7;
    changed.server.max_query_bytes = 300;
    changed.server.listen = "127.0.0.1:1".into();
    changed.cache.max_bytes *= 2;
    let report = evalgate::reload::apply(&gateway, &changed, None);
    assert_eq!(
        report.applied,
        ["admin.token", "cache.ttl_s", "server.max_query_bytes"]
    );
    assert_eq!(report.needs_restart, ["cache.max_bytes", "server.listen"]);

    // In force at once: the token, and the public limit (414 past 300 bytes).
    assert_eq!(
        admin_get(&gw, "/metrics", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        admin_get(&gw, "/metrics", Some("new-token")).await.status,
        StatusCode::OK
    );
    let long = gw.url(&format!("/v1/vardata?user_id={}", "u".repeat(400)));
    assert_eq!(
        get_with_key(&client(), &long, KEY).await.status,
        StatusCode::URI_TOO_LONG
    );
    assert_eq!(gateway.live().cache().ttl_s, 7);

    // A second reload with the same file changes nothing, but still names the keys
    // waiting for a restart.
    let again = evalgate::reload::apply(&gateway, &changed, None);
    assert!(again.applied.is_empty());
    assert_eq!(again.needs_restart, ["cache.max_bytes", "server.listen"]);
}

/// Collects what a `tracing` fmt layer writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn access_log_lines_are_sampled_and_mask_the_key() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.access_log.enabled = true;
    config.access_log.sample_rate = 0.5;
    let gateway = Gateway::new(config.validate().unwrap()).unwrap();
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("warn,evalgate::access=info")
        .json()
        .flatten_event(true)
        .with_writer(move || sink.clone())
        .finish();
    // `#[tokio::test]` runs on this thread only, so a thread-default subscriber sees it.
    let _guard = tracing::subscriber::set_default(subscriber);
    for i in 0..10 {
        let request = http::Request::get(format!("/v1/vardata?user_id=log{}", i % 2))
            .header("authorization", format!("Api-Key {KEY}"))
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        gateway.handle(request).await;
    }
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    for line in &lines {
        assert_eq!(line["target"], "evalgate::access");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["route"], "v1_vardata");
        assert_eq!(line["status"], 200);
        assert_eq!(line["deployment"], "…0001");
        assert!(line["micros"].is_u64());
    }
    assert!(!text.contains(KEY));
}

//! `[simulation]` through the real gateway: with `applies_to = "misses"` in front of an
//! HTTP upstream (which never sees a simulated 429 or 5xx, whose simulated timeouts and
//! resets become evalgate's own answers, and whose hits stay untouched), and with
//! `applies_to = "all"` on the listener (a hit can get a 429; a reset or an expired hold
//! leaves the client without an answer, on HTTP/1 and HTTP/2; a hold does not keep
//! shutdown waiting). The 10,000-request runs are in `tests/simulation_profile.rs`.

mod support;

use std::time::Duration;

use evalgate::config::{AppliesTo, SimulationConfig};
use evalgate::{Config, Gateway};
use support::raw_http::{NO_HANG, await_close};
use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `[simulation]` defaults changed by `change`.
fn simulation(change: impl FnOnce(&mut SimulationConfig)) -> SimulationConfig {
    let mut s = SimulationConfig::default();
    change(&mut s);
    s
}

/// A gateway in front of `upstream` with `profile`, served on 127.0.0.1:0 with its admin
/// listener; the `Gateway` handle reads its metrics.
async fn start(upstream: &FakeUpstream, profile: SimulationConfig) -> (Gateway, TestGateway) {
    let mut config: Config = config_for(&upstream.url());
    config.simulation = profile;
    let gateway = Gateway::new(config.validate().expect("valid")).unwrap();
    let gw = TestGateway::start_with_admin(gateway.clone()).await;
    (gateway, gw)
}

/// `kind` counts of `evalgate_simulated_total`: latency, 429, 5xx, timeout, reset.
fn simulated(gateway: &Gateway) -> [u64; 5] {
    gateway.metrics().simulation().counts()
}

#[tokio::test]
async fn misses_get_429s_and_503s_the_upstream_never_sees() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(
        &upstream,
        simulation(|s| {
            s.rate_429 = 1.0;
            s.retry_after_s = 3;
        }),
    )
    .await;
    let c = client();
    let got = get_with_key(&c, &gw.url("/v1/vardata?user_id=u1"), KEY).await;
    assert_eq!(got.status, 429);
    assert_eq!(got.header("retry-after"), Some("3"));
    assert_eq!(got.x_cache(), "MISS");
    assert!(got.json()["error"].as_str().unwrap().contains("simulated"));
    // Not stored: the next request is a miss again, and a passthrough is simulated too.
    let again = get_with_key(&c, &gw.url("/v1/vardata?user_id=u1"), KEY).await;
    assert_eq!((again.status.as_u16(), again.x_cache()), (429, "MISS"));
    let passthrough = get_with_key(&c, &gw.url("/some/other/path"), KEY).await;
    assert_eq!(
        (passthrough.status.as_u16(), passthrough.x_cache()),
        (429, "BYPASS")
    );
    assert_eq!(
        upstream.count(),
        0,
        "the upstream never sees a simulated 429"
    );
    assert_eq!(simulated(&gateway), [0, 3, 0, 0, 0]);
    // Nor counted as the upstream's: evalgate's upstream metrics saw no exchange.
    let metrics = send(&c, http::Method::GET, &gw.admin_url("/metrics"), &[], "").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("evalgate_simulated_total{kind=\"429\"} 3"),
        "{text}"
    );
    assert!(text.contains("evalgate_upstream_requests_total{outcome=\"4xx\"} 0"));

    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(&upstream, simulation(|s| s.rate_5xx = 1.0)).await;
    let got = get_with_key(&c, &gw.url("/v1/vardata?user_id=u1"), KEY).await;
    assert_eq!(got.status, 503);
    assert_eq!(got.x_cache(), "MISS");
    assert!(got.json()["error"].as_str().unwrap().contains("simulated"));
    assert_eq!(upstream.count(), 0);
    assert_eq!(simulated(&gateway), [0, 0, 1, 0, 0]);
}

#[tokio::test]
async fn a_simulated_timeout_is_evalgates_upstream_timeout() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.upstream.timeout_ms = 50;
    config.simulation = simulation(|s| s.rate_timeout = 1.0);
    let gateway = Gateway::new(config.validate().unwrap()).unwrap();
    let gw = TestGateway::start_gateway(gateway.clone()).await;
    let got = get_with_key(&client(), &gw.url("/v1/vardata?user_id=u1"), KEY).await;
    assert_eq!(got.status, 504);
    assert_eq!(got.json()["error"], "upstream timed out");
    assert_eq!(upstream.count(), 0);
    assert_eq!(simulated(&gateway), [0, 0, 0, 1, 0]);
}

#[tokio::test]
async fn a_simulated_reset_is_an_upstream_connection_error() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(&upstream, simulation(|s| s.rate_reset = 1.0)).await;
    let got = get_with_key(&client(), &gw.url("/v1/vardata?user_id=u1"), KEY).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.json()["error"], "upstream unreachable");
    assert_eq!(upstream.count(), 0);
    assert_eq!(simulated(&gateway), [0, 0, 0, 0, 1]);
}

#[tokio::test]
async fn misses_leave_hits_alone() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(
        &upstream,
        simulation(|s| {
            s.rate_429 = 0.5;
            s.seed = 11;
        }),
    )
    .await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=u1");
    // Misses until one passes the draw and fills the entry.
    let mut tries = 0;
    loop {
        tries += 1;
        assert!(tries < 50, "half the draws pass");
        let got = get_with_key(&c, &url, KEY).await;
        if got.status == 200 {
            assert_eq!(got.x_cache(), "MISS");
            break;
        }
        assert_eq!(got.status, 429);
    }
    let draws = gateway.simulation().unwrap().draws();
    assert_eq!(draws, tries);
    for _ in 0..50 {
        let got = get_with_key(&c, &url, KEY).await;
        assert_eq!((got.status.as_u16(), got.x_cache()), (200, "HIT"));
    }
    assert_eq!(
        gateway.simulation().unwrap().draws(),
        draws,
        "hits draw nothing"
    );
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn all_a_cache_hit_can_get_a_429() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(
        &upstream,
        simulation(|s| {
            s.rate_429 = 0.5;
            s.applies_to = AppliesTo::All;
            s.seed = 3;
        }),
    )
    .await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=u1");
    let mut filled = false;
    let mut limited_hit = false;
    for _ in 0..100 {
        let got = get_with_key(&c, &url, KEY).await;
        match got.status.as_u16() {
            200 => filled = true,
            429 => {
                // Instead of the answer: the cache was never asked.
                assert_eq!(got.header("x-cache"), None);
                assert_eq!(got.header("retry-after"), Some("1"));
                assert_eq!(got.header("cache-control"), Some("no-store"));
                limited_hit |= filled;
            }
            other => panic!("{other}"),
        }
        if limited_hit {
            break;
        }
    }
    assert!(limited_hit, "a 429 after the entry was stored");
    assert_eq!(upstream.count(), 1, "one fill; the rest were hits or 429s");
    let [_, too_many, ..] = simulated(&gateway);
    assert!(too_many >= 1);
}

/// Sends a `GET /v1/vardata` head on a raw connection and returns what comes back before
/// the server closes it.
async fn raw_get(gw: &TestGateway) -> Vec<u8> {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let head = format!(
        "GET /v1/vardata?user_id=u1 HTTP/1.1\r\nhost: x\r\nauthorization: Api-Key {KEY}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    await_close(&mut stream).await
}

#[tokio::test]
async fn all_a_reset_closes_the_connection_with_no_answer() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(
        &upstream,
        simulation(|s| {
            s.rate_reset = 1.0;
            s.applies_to = AppliesTo::All;
        }),
    )
    .await;
    assert_eq!(raw_get(&gw).await, b"", "HTTP/1.1: closed, nothing written");

    // HTTP/2: the stream is reset (INTERNAL_ERROR); the connection's other streams go on.
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    for _ in 0..2 {
        let mut ready = client.clone().ready().await.unwrap();
        let request = http::Request::get("http://evalgate/v1/vardata?user_id=u1")
            .header("authorization", format!("Api-Key {KEY}"))
            .body(())
            .unwrap();
        let (response, _) = ready.send_request(request, true).unwrap();
        let err = tokio::time::timeout(NO_HANG, response)
            .await
            .expect("no hang")
            .expect_err("no answer");
        assert_eq!(err.reason(), Some(h2::Reason::INTERNAL_ERROR), "{err}");
    }
    assert_eq!(upstream.count(), 0);
    assert_eq!(simulated(&gateway), [0, 0, 0, 0, 3]);
}

#[tokio::test]
async fn all_a_timeout_hold_ends_without_an_answer() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(
        &upstream,
        simulation(|s| {
            s.rate_timeout = 1.0;
            s.timeout_hold_ms = 50;
            s.applies_to = AppliesTo::All;
        }),
    )
    .await;
    assert_eq!(raw_get(&gw).await, b"");
    assert_eq!(upstream.count(), 0);
    assert_eq!(simulated(&gateway), [0, 0, 0, 1, 0]);
}

#[tokio::test]
async fn a_hold_does_not_keep_shutdown_waiting() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.server.shutdown_timeout_ms = 100;
    config.simulation = simulation(|s| {
        s.rate_timeout = 1.0;
        s.timeout_hold_ms = 3_600_000;
        s.applies_to = AppliesTo::All;
    });
    let gateway = Gateway::new(config.validate().unwrap()).unwrap();
    let gw = TestGateway::start_gateway(gateway.clone()).await;
    let held = tokio::spawn({
        let addr = gw.addr;
        async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "GET /v1/vardata?user_id=u1 HTTP/1.1\r\nhost: x\r\nauthorization: Api-Key {KEY}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await.unwrap();
            await_close(&mut stream).await
        }
    });
    // The request is being held once it was drawn.
    while simulated(&gateway)[3] == 0 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::timeout(NO_HANG, gw.shutdown())
        .await
        .expect("shutdown within server.shutdown_timeout_ms, not the hold");
    assert_eq!(held.await.unwrap(), b"", "dropped without an answer");
}

#[tokio::test]
async fn stats_and_metrics_show_the_simulation() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(
        &upstream,
        simulation(|s| {
            s.latency_p50_ms = 2;
            s.latency_p99_ms = 5;
            s.seed = 9;
        }),
    )
    .await;
    let c = client();
    for user in ["a", "b", "c"] {
        let url = gw.url(&format!("/v1/vardata?user_id={user}"));
        assert_eq!(get_with_key(&c, &url, KEY).await.status, 200);
    }
    assert_eq!(simulated(&gateway), [3, 0, 0, 0, 0]);
    let stats = send(
        &c,
        http::Method::GET,
        &gw.admin_url("/admin/stats"),
        &[],
        "",
    )
    .await;
    let sim = &stats.json()["simulation"];
    assert_eq!(sim["profile"]["applies_to"], "misses");
    assert_eq!(sim["profile"]["seed"], 9);
    assert_eq!(sim["draws"], 3);
    assert_eq!(sim["simulated"]["latency"], 3);
    assert_eq!(sim["delay_ms"]["count"], 3);
    let metrics = send(&c, http::Method::GET, &gw.admin_url("/metrics"), &[], "").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("evalgate_simulated_delay_seconds_count 3"),
        "{text}"
    );

    // Without a simulation: `null`, and no simulation series at all.
    let plain = FakeUpstream::start().await;
    let (_, gw) = start(&plain, SimulationConfig::default()).await;
    let stats = send(
        &c,
        http::Method::GET,
        &gw.admin_url("/admin/stats"),
        &[],
        "",
    )
    .await;
    assert_eq!(stats.json()["simulation"], serde_json::Value::Null);
    let metrics = send(&c, http::Method::GET, &gw.admin_url("/metrics"), &[], "").await;
    assert!(!String::from_utf8_lossy(&metrics.body).contains("simulated"));
}

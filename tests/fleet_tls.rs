//! The shared cache tier (issue 13) over TLS (`rediss://`): gateways trusting the test CA
//! share entries and purges; without the CA the tier stays off and requests are answered.

mod support;

use std::time::{Duration, Instant};

use evalgate::gateway::PurgeScope;
use evalgate::shared_cache::Fanout;
use support::redis::RedisServer;
use support::tier_fleet::{Fleet, POLL, echoed, vardata};
use support::*;

/// `rediss://` with the CA that signed the server's certificate: a fill on one gateway is
/// an `l2` HIT on the other, and a purge on one reaches the other over the TLS
/// subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_ca_file_shares_entries_and_purges() {
    let server = RedisServer::start_tls();
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.shared_cache.url = server.url();
    config.shared_cache.ca_file = server.ca_file().display().to_string();
    config.shared_cache.timeout_ms = 1000;
    // Only the announcement, never a periodic resync, can drop B's entry below.
    config.shared_cache.resync_interval_ms = 3_600_000;
    let fleet = Fleet::start(vec![config; 2]).await;
    let c = client();

    let a = get_with_key(&c, &fleet.servers[0].url(&vardata(1)), KEY).await;
    assert_eq!(
        (a.x_cache(), a.header("x-cache-tier")),
        ("MISS", Some("upstream"))
    );
    let b = get_with_key(&c, &fleet.servers[1].url(&vardata(1)), KEY).await;
    assert_eq!((b.x_cache(), b.header("x-cache-tier")), ("HIT", Some("l2")));
    assert_eq!(b.body, a.body);
    assert_eq!(upstream.count(), 1);
    fleet.await_count("write", "ok", 1).await;
    let values = server
        .keys()
        .into_keys()
        .filter(|k| k.ends_with(":v"))
        .count();
    assert_eq!(values, 1);

    // The purge subscription runs over TLS too: a purge on A reaches B as a message.
    let deadline = Instant::now() + Duration::from_secs(10);
    let numsub = || server.cmd(&["PUBSUB", "NUMSUB", "evalgate:1:purge"]);
    while numsub().lines().nth(1) != Some("2") {
        assert!(Instant::now() < deadline, "subscribers: {}", numsub());
        tokio::time::sleep(POLL).await;
    }
    let b_metrics = fleet.gateways[1].shared_cache().unwrap().metrics();
    let received = b_metrics.fanout()[1];
    let fanout = fleet.gateways[0]
        .purge(&PurgeScope::Deployment(KEY.to_string()))
        .await;
    assert_eq!(fanout, Some(Fanout::Sent));
    // The counter rises as the message arrives, just before B drops its entry.
    let b = loop {
        let b = get_with_key(&c, &fleet.servers[1].url(&vardata(1)), KEY).await;
        if b_metrics.fanout()[1] > received && b.x_cache() == "MISS" {
            break b;
        }
        assert!(Instant::now() < deadline, "B got no purge message");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(
        (b.x_cache(), b.header("x-cache-tier")),
        ("MISS", Some("upstream"))
    );
    assert_eq!(upstream.count(), 2);
}

/// `rediss://` without `ca_file` trusts the system's roots only, which do not include the
/// test CA: the tier stays off, and every request is answered, from the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_without_the_ca_file_leaves_the_tier_off_and_requests_answered() {
    let server = RedisServer::start_tls();
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.shared_cache.url = server.url();
    config.shared_cache.timeout_ms = 2000;
    config.shared_cache.connect_timeout_ms = 500;
    config.shared_cache.breaker_open_ms = 100;
    let g = evalgate::Gateway::new(config.validate().unwrap()).unwrap();
    let gw = TestGateway::start_with_admin(g.clone()).await;
    let shared = g.shared_cache().unwrap();

    // The same attempt the maintenance task makes fails on the certificate.
    let err = shared.check_connection().await.unwrap_err();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(!shared.usable());

    let c = client();
    for user in 0..3 {
        let url = gw.url(&vardata(user));
        let first = get_with_key(&c, &url, KEY).await;
        assert_eq!(first.status, 200);
        assert_eq!(
            (first.x_cache(), first.header("x-cache-tier")),
            ("MISS", Some("upstream"))
        );
        assert_eq!(echoed(&first), (format!("u{user}"), 0));
        // A single box: its own memory still works.
        let again = get_with_key(&c, &url, KEY).await;
        assert_eq!(
            (again.x_cache(), again.header("x-cache-tier")),
            ("HIT", None)
        );
        assert_eq!(again.body, first.body);
    }
    assert_eq!(upstream.count(), 3);
    assert!(!shared.usable());
    let metrics = send(&c, http::Method::GET, &gw.admin_url("/metrics"), &[], "").await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.lines().any(|l| l == "evalgate_shared_cache_up 0"),
        "{text}"
    );
    assert_eq!(shared.metrics().count("write", "ok"), 0);
    assert!(server.keys().is_empty(), "nothing reached Redis");
}

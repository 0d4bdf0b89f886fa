//! The upstream dies and comes back under load: cached keys keep answering (STALE once
//! past freshness), uncached keys get a quick 502, nothing hangs, and service resumes.

mod support;

use std::time::Duration;

use support::*;
use tokio::net::TcpListener;

/// Generous bound on any single answer: far above the 200 ms connect timeout, far below a
/// hang.
const NO_HANG: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_killed_and_restarted_under_load() {
    let upstream = FakeUpstream::start().await;
    let addr = upstream.addr;
    let mut config = config_for(&upstream.url());
    config.cache.ttl_s = 1;
    config.cache.stale_if_error_s = 600;
    config.upstream.connect_timeout_ms = 200;
    config.upstream.timeout_ms = 1000;
    let gw = TestGateway::start(config).await;
    let c = client();
    let cached: Vec<String> = (0..10)
        .map(|i| gw.url(&format!("/v1/vardata?user_id=cached-{i}")))
        .collect();
    for url in &cached {
        assert_eq!(get_with_key(&c, url, KEY).await.status, 200);
    }

    // Kill the upstream; let the cached entries go stale.
    upstream.stop().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // Load while it is down: 8 workers, 25 rounds each, over cached and new keys.
    let mut workers = Vec::new();
    for w in 0..8 {
        let cached = cached.clone();
        let base = gw.url("/v1/vardata");
        workers.push(tokio::spawn(async move {
            let c = client();
            let mut outcomes = Vec::new();
            for round in 0..25 {
                let url = &cached[(w + round) % cached.len()];
                let got = tokio::time::timeout(NO_HANG, get_with_key(&c, url, KEY))
                    .await
                    .expect("cached key answered");
                outcomes.push(("cached", got.status.as_u16(), got.x_cache().to_string()));
                let fresh = format!("{base}?user_id=new-{w}-{round}");
                let got = tokio::time::timeout(NO_HANG, get_with_key(&c, &fresh, KEY))
                    .await
                    .expect("new key answered");
                outcomes.push(("new", got.status.as_u16(), got.x_cache().to_string()));
            }
            outcomes
        }));
    }
    for w in workers {
        for (kind, status, x_cache) in w.await.unwrap() {
            match kind {
                "cached" => assert_eq!((status, x_cache.as_str()), (200, "STALE")),
                _ => assert_eq!((status, x_cache.as_str()), (502, "MISS")),
            }
        }
    }

    // Bring it back on the same port: new keys are answered again, cached ones refreshed.
    let listener = TcpListener::bind(addr)
        .await
        .expect("the upstream's port is free again");
    let upstream = FakeUpstream::start_on(listener).await;
    let back = get_with_key(&c, &gw.url("/v1/vardata?user_id=after"), KEY).await;
    assert_eq!((back.status.as_u16(), back.x_cache()), (200, "MISS"));
    let refreshed = get_with_key(&c, &cached[0], KEY).await;
    assert_eq!(
        (refreshed.status.as_u16(), refreshed.x_cache()),
        (200, "MISS")
    );
    assert_eq!(upstream.count(), 2);
}

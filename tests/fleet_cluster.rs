//! The shared cache tier (issue 13) on a three-master Redis Cluster: several in-process
//! gateways, one counting upstream, real `redis-server` processes.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use evalgate::gateway::PurgeScope;
use evalgate::shared_cache::Fanout;
use futures_util::stream::{self, StreamExt};
use support::redis::RedisCluster;
use support::tier_fleet::{Fleet, POLL, echoed, vardata};
use support::*;

/// The fleet test on a three-master Cluster: 4 gateways, 1,000 keys × 10 requests
/// spread round-robin → exactly 1,000 upstream requests, every answer the upstream's; the
/// entries spread over the masters, and the Lua scripts (value and lock in one hash slot,
/// the generations hash one key) never fail there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_gateways_on_a_cluster_fetch_each_key_once() {
    const GATEWAYS: usize = 4;
    const KEYS: usize = 1000;
    const ROUNDS: usize = 10;
    let cluster = RedisCluster::start(3);
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.shared_cache.cluster_nodes = cluster.node_urls();
    config.shared_cache.key_secret = "fleet-secret".into();
    // The count below is exact, and a Redis call that times out legitimately costs an
    // upstream fetch: on this shared two-core VM a debug build needs more than the 50 ms
    // default, so the bound is generous here (the fault tests check the tight one).
    config.shared_cache.timeout_ms = 2000;
    config.shared_cache.resync_interval_ms = 500;
    // No entry may expire while the test runs.
    config.cache.ttl_s = 600;
    let fleet = Fleet::start(vec![config; GATEWAYS]).await;
    let c = client();

    // Round r sends key k to gateway (k + r) % 4: every key visits every gateway, ten
    // times in all, 1,000 requests apart. 16 requests in flight at once.
    let started = Instant::now();
    let plan: Vec<(usize, usize)> = (0..ROUNDS)
        .flat_map(|r| (0..KEYS).map(move |k| (k, (k + r) % GATEWAYS)))
        .collect();
    let answers: Vec<(usize, Got)> = stream::iter(plan)
        .map(|(k, gw)| {
            let c = &c;
            let url = fleet.servers[gw].url(&vardata(k));
            async move { (k, get_with_key(c, &url, KEY).await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let elapsed = started.elapsed();
    eprintln!(
        "{} requests over {GATEWAYS} gateways on a cluster in {elapsed:?}",
        answers.len()
    );

    assert_eq!(answers.len(), KEYS * ROUNDS);
    assert_eq!(upstream.count(), KEYS, "one upstream request per key");
    let mut tiers = BTreeMap::<String, usize>::new();
    let mut bodies = vec![None; KEYS];
    for (k, got) in &answers {
        assert_eq!(got.status, 200, "{:?}", got.body);
        *tiers
            .entry(got.header("x-cache-tier").unwrap_or("l1").to_string())
            .or_default() += 1;
        // Every answer is the upstream's to this key's request: it echoes that request.
        assert_eq!(echoed(got), (format!("u{k}"), 0));
        let first = bodies[*k].get_or_insert_with(|| got.body.clone());
        assert_eq!(*first, got.body, "key {k}: answers differ");
    }
    // Each key: one fetch, its first visit to each of the 3 other gateways from Redis,
    // the 6 other requests from the gateway's own memory.
    let expected = BTreeMap::from([
        ("l1".to_string(), KEYS * 6),
        ("l2".to_string(), KEYS * 3),
        ("upstream".to_string(), KEYS),
    ]);
    assert_eq!(tiers, expected);

    // The fills reach Redis (tracked writes, after the answers), spread over the masters.
    fleet.await_count("write", "ok", KEYS as u64).await;
    let by_node = cluster.keys_by_node();
    let values_per_node: Vec<usize> = by_node
        .iter()
        .map(|keys| keys.keys().filter(|k| k.ends_with(":v")).count())
        .collect();
    assert_eq!(values_per_node.iter().sum::<usize>(), KEYS);
    assert!(
        values_per_node.iter().filter(|n| **n > 0).count() >= 2,
        "values per node: {values_per_node:?}"
    );
    // One generations hash, on one node.
    let gens: Vec<usize> = by_node
        .iter()
        .map(|keys| keys.keys().filter(|k| *k == "evalgate:1:gens").count())
        .collect();
    assert_eq!(gens.iter().sum::<usize>(), 1, "{gens:?}");
    // The scripts ran on the cluster without a single error (a CROSSSLOT would be one).
    for (op, result) in [
        ("read", "error"),
        ("read", "timeout"),
        ("read", "skipped"),
        ("write", "error"),
        ("write", "timeout"),
        ("write", "skipped"),
        ("resync", "error"),
    ] {
        assert_eq!(fleet.count(op, result), 0, "{op}/{result}");
    }
    assert_eq!(fleet.count("read", "miss"), KEYS as u64);
    assert_eq!(fleet.count("read", "hit"), 3 * KEYS as u64);
}

/// A purge on one gateway reaches the others through a Cluster: each gateway subscribes
/// on a different node (the first of its `cluster_nodes` that answers), and the Cluster
/// forwards every PUBLISH to every node. The next request for a purged key on each peer
/// is a MISS within the documented bound (one resync interval); other deployments keep
/// their entries, and no purged answer comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_on_one_gateway_reaches_the_others_through_a_cluster() {
    const RESYNC_MS: u64 = 500;
    let cluster = RedisCluster::start(3);
    let upstream = FakeUpstream::start().await;
    let nodes = cluster.node_urls();
    let configs = (0..4)
        .map(|i| {
            let mut config = config_for(&upstream.url());
            // Gateway i subscribes on node i % 3.
            let mut rotated = nodes.clone();
            rotated.rotate_left(i % nodes.len());
            config.shared_cache.cluster_nodes = rotated;
            config.shared_cache.timeout_ms = 1000;
            config.shared_cache.resync_interval_ms = RESYNC_MS;
            config
        })
        .collect();
    let fleet = Fleet::start(configs).await;

    // Every gateway is subscribed before the purge (an event: the nodes count them).
    let deadline = Instant::now() + Duration::from_secs(10);
    let subscribers = || -> Vec<u64> {
        cluster
            .nodes()
            .iter()
            .map(|n| {
                let out = n.cmd(&["PUBSUB", "NUMSUB", "evalgate:1:purge"]);
                out.lines().nth(1).unwrap().trim().parse().unwrap()
            })
            .collect()
    };
    while subscribers().iter().sum::<u64>() < 4 {
        assert!(
            Instant::now() < deadline,
            "subscribers: {:?}",
            subscribers()
        );
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(subscribers(), vec![2, 1, 1], "one subscription per gateway");

    // u0..u3 of KEY and u0 of KEY2 in every gateway's memory.
    let c = client();
    for (key, users) in [(KEY, 0..4), (KEY2, 0..1)] {
        for user in users {
            for server in &fleet.servers {
                let got = get_with_key(&c, &server.url(&vardata(user)), key).await;
                assert_eq!(got.status, 200);
            }
        }
    }
    assert_eq!(upstream.count(), 5);
    for server in &fleet.servers {
        for user in 0..4 {
            let got = get_with_key(&c, &server.url(&vardata(user)), KEY).await;
            assert_eq!((got.x_cache(), got.header("x-cache-tier")), ("HIT", None));
        }
    }

    // New answers upstream, then purge KEY on gateway 0.
    upstream.update(|s| s.version = 1);
    let received_before: Vec<u64> = fleet
        .gateways
        .iter()
        .map(|g| g.shared_cache().unwrap().metrics().fanout()[1])
        .collect();
    let purged_at = Instant::now();
    let fanout = fleet.gateways[0]
        .purge(&PurgeScope::Deployment(KEY.to_string()))
        .await;
    assert_eq!(fanout, Some(Fanout::Sent));

    // Peer i asks for u{i} until it misses (before the announcement lands it still has
    // its own L1 entry). The documented bound is one resync interval; the announcement
    // usually makes it immediate. Generous margin for this shared VM.
    let bound = Duration::from_millis(RESYNC_MS) + Duration::from_millis(1500);
    for peer in 1..4 {
        let url = fleet.servers[peer].url(&vardata(peer));
        let got = loop {
            let got = get_with_key(&c, &url, KEY).await;
            if got.x_cache() == "MISS" {
                break got;
            }
            assert_eq!(
                echoed(&got).1,
                0,
                "a HIT before the purge landed is the old one"
            );
            assert!(
                purged_at.elapsed() < bound,
                "peer {peer} still serves the purged entry after {:?}",
                purged_at.elapsed()
            );
            tokio::time::sleep(POLL).await;
        };
        assert_eq!(got.header("x-cache-tier"), Some("upstream"));
        assert_eq!(echoed(&got).1, 1);
    }
    assert_eq!(upstream.count(), 5 + 3);
    // The announcement, not only the resync, reached every peer through the Cluster.
    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, g) in fleet.gateways.iter().enumerate().skip(1) {
        let metrics = g.shared_cache().unwrap().metrics();
        while metrics.fanout()[1] <= received_before[i] {
            assert!(Instant::now() < deadline, "gateway {i} got no message");
            tokio::time::sleep(POLL).await;
        }
    }

    // KEY2 kept its entries everywhere.
    for server in &fleet.servers {
        let got = get_with_key(&c, &server.url(&vardata(0)), KEY2).await;
        assert_eq!((got.x_cache(), got.header("x-cache-tier")), ("HIT", None));
        assert_eq!(echoed(&got).1, 0);
    }
    // No purged answer anywhere: u1..u3 come from the peers' new fills, u0 is fetched once.
    for server in &fleet.servers {
        for user in 0..4 {
            let got = get_with_key(&c, &server.url(&vardata(user)), KEY).await;
            assert_eq!(got.status, 200);
            assert_eq!(echoed(&got).1, 1, "user {user}: a purged answer came back");
        }
    }
    assert_eq!(upstream.count(), 5 + 4);
}

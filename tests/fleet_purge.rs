//! Purges across a fleet (issue 13): several in-process gateways, each with its admin
//! listener, share one real `redis-server` and one counting upstream. A purge on one
//! instance reaches every other instance's L1 through the announcement (or, when that is
//! missed, through the resync); a purge made while Redis is away is replayed; a Redis that
//! lost its generations makes every instance drop its L1; a flag change seen by one poller
//! purges the deployment everywhere, and the fleet polls each deployment once per interval.

mod support;

use std::time::{Duration, Instant};

use evalgate::Gateway;
use http::Method;
use support::redis::RedisServer;
use support::*;

/// The resync interval of most tests: short, so a missed announcement costs little time.
const RESYNC_MS: u64 = 300;
/// The resync interval where the announcement path is measured: the default, so that a
/// propagation "well under" it cannot have come from a resync.
const ANNOUNCE_RESYNC_MS: u64 = 2000;
/// The longest any awaited event may take before a test fails (a bound on loops, not a
/// speed threshold).
const DEADLINE: Duration = Duration::from_secs(10);

/// One instance of the fleet: its gateway (for in-process metrics) and its listeners.
struct Node {
    name: &'static str,
    gateway: Gateway,
    server: TestGateway,
}

impl Node {
    fn shared(&self) -> &evalgate::shared_cache::SharedCache {
        self.gateway.shared_cache().expect("the tier is configured")
    }

    /// `evalgate_purges_total{scope}`: purges applied to this instance's L1.
    fn purges(&self, scope: &str) -> u64 {
        metric(
            &self.gateway.metrics().encode(),
            &format!("evalgate_purges_total{{scope=\"{scope}\"}}"),
        )
    }

    /// Purges of either scope applied here.
    fn all_purges(&self) -> u64 {
        self.purges("all") + self.purges("deployment")
    }

    /// Awaits the tier being in use again, as its state and `evalgate_shared_cache_up`
    /// report it.
    async fn until_up(&self) {
        let up = tokio::time::timeout(DEADLINE, self.shared().until(true)).await;
        let gauge = metric(&self.gateway.metrics().encode(), "evalgate_shared_cache_up");
        assert!(
            up.is_ok() && gauge == 1,
            "{}: the tier is in use again (breaker closed: {}, evalgate_shared_cache_up {gauge})",
            self.name,
            self.shared().usable(),
        );
    }

    fn received(&self) -> u64 {
        self.shared().metrics().fanout()[1]
    }

    fn resync_changed(&self) -> u64 {
        self.shared().metrics().count("resync", "changed")
    }

    async fn get(&self, user: &str, key: &str) -> Got {
        let got = get_with_key(
            &client(),
            &self.server.url(&format!("/v1/vardata?user_id={user}")),
            key,
        )
        .await;
        assert_eq!(got.status, 200, "{}: {:?}", self.name, got.body);
        got
    }

    /// `POST /admin/purge{query}` on this instance's admin listener; the JSON answer.
    async fn purge(&self, query: &str) -> serde_json::Value {
        let got = send(
            &client(),
            Method::POST,
            &self.server.admin_url(&format!("/admin/purge{query}")),
            &[],
            "",
        )
        .await;
        assert_eq!(got.status, 200, "{:?}", got.body);
        got.json()
    }
}

/// The value of the series `name` (with its labels) in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {name}"))
        .trim()
        .parse()
        .expect("a counter value")
}

fn tier(got: &Got) -> &str {
    got.header("x-cache-tier").unwrap_or("")
}

/// The upstream's answer version written into an evaluation body.
fn version(got: &Got) -> u64 {
    got.json()["flag-echo"]["payload"]["version"]
        .as_u64()
        .expect("an evaluation echo")
}

/// A config for one instance of a fleet on `redis` with short timeouts.
fn fleet_config(upstream: &FakeUpstream, redis: &RedisServer, resync_ms: u64) -> evalgate::Config {
    let mut config = config_for(&upstream.url());
    config.cache.ttl_s = 3600;
    let sc = &mut config.shared_cache;
    sc.url = redis.url();
    sc.timeout_ms = 100;
    sc.resync_interval_ms = resync_ms;
    sc.breaker_open_ms = 100;
    sc.breaker_max_open_ms = 500;
    config
}

/// Starts one instance per name and waits until each has the tier in use.
async fn fleet(config: &evalgate::Config, names: &[&'static str]) -> Vec<Node> {
    let mut nodes = Vec::new();
    for name in names {
        let gateway = Gateway::new(config.clone().validate().unwrap()).unwrap();
        let server = TestGateway::start_with_admin(gateway.clone()).await;
        nodes.push(Node {
            name,
            gateway,
            server,
        });
    }
    for node in &nodes {
        tokio::time::timeout(Duration::from_secs(5), node.shared().until(true))
            .await
            .unwrap_or_else(|_| panic!("{}: the tier came up", node.name));
    }
    nodes
}

/// The users every instance holds answers for: one per instance, so that after a purge
/// each instance's first request is its own (nobody refilled it in Redis yet).
fn users(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| format!("u-{}", n.name)).collect()
}

/// Every instance asks for every user under every key, then holds each in its L1.
async fn fill(nodes: &[Node], keys: &[&str]) {
    let users = users(nodes);
    for node in nodes {
        for key in keys {
            for user in &users {
                node.get(user, key).await;
            }
        }
    }
    for node in nodes {
        for key in keys {
            for user in &users {
                let got = node.get(user, key).await;
                assert_eq!(
                    (got.x_cache(), tier(&got)),
                    ("HIT", "l1"),
                    "{} holds {user}",
                    node.name
                );
            }
        }
    }
}

/// Each node's `value` now, for [`until_each_moves`].
fn snapshot(nodes: &[&Node], value: impl Fn(&Node) -> u64) -> Vec<u64> {
    nodes.iter().map(|n| value(n)).collect()
}

/// Polls every node's `value` until it differs from `start` (taken before the event);
/// returns how long each took, from `since`. Fails after [`DEADLINE`].
async fn until_each_moves(
    nodes: &[&Node],
    start: &[u64],
    since: Instant,
    value: impl Fn(&Node) -> u64,
) -> Vec<Duration> {
    let mut took: Vec<Option<Duration>> = vec![None; nodes.len()];
    while took.iter().any(Option::is_none) {
        for (i, node) in nodes.iter().enumerate() {
            if took[i].is_none() && value(node) != start[i] {
                took[i] = Some(since.elapsed());
            }
        }
        assert!(
            since.elapsed() < DEADLINE,
            "not every instance moved within {DEADLINE:?}: {:?}",
            nodes
                .iter()
                .zip(&took)
                .map(|(n, t)| (n.name, *t))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    took.into_iter().map(Option::unwrap).collect()
}

/// After a purge of `key` (and a version bump to `now`): each instance's first request,
/// for its own user, goes to the upstream; then every instance answers every user with
/// the new version, never a purged one.
async fn refilled_everywhere(nodes: &[Node], key: &str, now: u64) {
    for (node, user) in nodes.iter().zip(users(nodes)) {
        let got = node.get(&user, key).await;
        assert_eq!(
            (got.x_cache(), tier(&got)),
            ("MISS", "upstream"),
            "{}: its first request after the purge",
            node.name
        );
        assert_eq!(version(&got), now, "{}", node.name);
    }
    for node in nodes {
        for user in users(nodes) {
            let got = node.get(&user, key).await;
            assert_eq!(version(&got), now, "{} served a purged answer", node.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_reaches_every_instance_through_the_announcement() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let config = fleet_config(&upstream, &redis, ANNOUNCE_RESYNC_MS);
    let nodes = fleet(&config, &["a", "b", "c", "d"]).await;
    fill(&nodes, &[KEY, KEY2]).await;
    let peers: Vec<&Node> = nodes[1..].iter().collect();

    upstream.update(|s| s.version = 1);
    let before = snapshot(&peers, |n| n.purges("deployment"));
    let answer = nodes[0].purge(&format!("?deployment={KEY}")).await;
    let answered = Instant::now();
    assert_eq!(answer["purged"], "deployment");
    assert_eq!(answer["fanout"], "sent");
    let took = until_each_moves(&peers, &before, answered, |n| n.purges("deployment")).await;
    eprintln!("purge of one deployment reached the peers after {took:?}");
    // The documented bound: an announced purge reaches every instance well within one
    // resync interval (it came through the channel, not a resync). Generous for a
    // shared two-core VM; measured in milliseconds.
    for (peer, took) in peers.iter().zip(&took) {
        assert!(
            *took < Duration::from_millis(ANNOUNCE_RESYNC_MS / 4),
            "{}: {took:?}",
            peer.name
        );
        assert!(peer.received() >= 1, "{}: announcement received", peer.name);
    }
    refilled_everywhere(&nodes, KEY, 1).await;
    // Another deployment's entries stay where they were, on every instance.
    for node in &nodes {
        for user in users(&nodes) {
            let got = node.get(&user, KEY2).await;
            assert_eq!((got.x_cache(), tier(&got)), ("HIT", "l1"), "{}", node.name);
            assert_eq!(version(&got), 0);
        }
    }

    // Purge everything, from another instance.
    upstream.update(|s| s.version = 2);
    let others: Vec<&Node> = [&nodes[0], &nodes[2], &nodes[3]].into();
    let before = snapshot(&others, |n| n.purges("all"));
    let answer = nodes[1].purge("").await;
    let answered = Instant::now();
    assert_eq!(answer["purged"], "all");
    assert_eq!(answer["fanout"], "sent");
    let took = until_each_moves(&others, &before, answered, |n| n.purges("all")).await;
    eprintln!("purge of everything reached the peers after {took:?}");
    for (peer, took) in others.iter().zip(&took) {
        assert!(
            *took < Duration::from_millis(ANNOUNCE_RESYNC_MS / 4),
            "{}: {took:?}",
            peer.name
        );
    }
    refilled_everywhere(&nodes, KEY, 2).await;
    refilled_everywhere(&nodes, KEY2, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_during_a_purge_never_keep_a_purged_answer() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let config = fleet_config(&upstream, &redis, ANNOUNCE_RESYNC_MS);
    let nodes = fleet(&config, &["a", "b"]).await;
    let users: Vec<String> = (0..16).map(|i| format!("busy-{i}")).collect();
    for round in 1..=ROUNDS {
        // Every answer is in Redis and in the purging instance's L1.
        for user in &users {
            nodes[1].get(user, KEY).await;
            nodes[0].get(user, KEY).await;
        }
        upstream.update(|s| s.version = round);
        // Requests for those keys keep arriving at the purging instance while it purges.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy: Vec<_> = users
            .iter()
            .map(|user| {
                let (url, user, stop) = (
                    nodes[0].server.url(&format!("/v1/vardata?user_id={user}")),
                    user.clone(),
                    stop.clone(),
                );
                tokio::spawn(async move {
                    let c = client();
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let got = get_with_key(&c, &url, KEY).await;
                        assert_eq!(got.status, 200, "{user}");
                    }
                })
            })
            .collect();
        let answer = nodes[0].purge(&format!("?deployment={KEY}")).await;
        assert_eq!(answer["fanout"], "sent");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for task in busy {
            task.await.unwrap();
        }
        for user in &users {
            let got = nodes[0].get(user, KEY).await;
            assert_eq!(
                version(&got),
                round,
                "round {round}: {user} purged, still served from {}",
                tier(&got)
            );
        }
    }
}

/// Purges made while requests keep arriving.
const ROUNDS: u64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_announcement_is_caught_by_the_resync() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let config = fleet_config(&upstream, &redis, RESYNC_MS);
    let nodes = fleet(&config, &["a", "b", "c"]).await;
    fill(&nodes, &[KEY, KEY2]).await;
    let peers: Vec<&Node> = nodes[1..].iter().collect();

    // Drop every subscription and keep them from coming back (no SUBSCRIBE for the
    // default user): the announcement of the purge reaches nobody.
    redis.cmd(&["ACL", "SETUSER", "default", "-subscribe"]);
    assert_eq!(redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]), "3");
    assert_eq!(redis.cmd(&["CLIENT", "LIST", "TYPE", "pubsub"]), "");
    let received: Vec<u64> = peers.iter().map(|n| n.received()).collect();

    upstream.update(|s| s.version = 1);
    let before = snapshot(&peers, |n| n.purges("deployment"));
    let answer = nodes[0].purge(&format!("?deployment={KEY}")).await;
    let answered = Instant::now();
    assert_eq!(answer["fanout"], "sent");
    let took = until_each_moves(&peers, &before, answered, |n| n.purges("deployment")).await;
    eprintln!("missed announcement: the resync purged the peers after {took:?}");
    for (i, peer) in peers.iter().enumerate() {
        // Within one resync interval, plus one resync call (timeout_ms) and a margin for
        // a slow shared VM.
        assert!(
            took[i] < Duration::from_millis(RESYNC_MS + 100 + 400),
            "{}: {:?}",
            peer.name,
            took[i]
        );
        assert_eq!(
            peer.received(),
            received[i],
            "{}: no announcement",
            peer.name
        );
        assert!(
            peer.resync_changed() >= 1,
            "{}: found by a resync",
            peer.name
        );
    }
    refilled_everywhere(&nodes, KEY, 1).await;
    for node in &nodes {
        let got = node.get("u-a", KEY2).await;
        assert_eq!((got.x_cache(), tier(&got)), ("HIT", "l1"), "{}", node.name);
    }

    // Subscriptions come back once allowed again.
    redis.cmd(&["ACL", "SETUSER", "default", "+subscribe"]);
    let started = Instant::now();
    while redis.cmd(&["PUBSUB", "NUMSUB", "evalgate:1:purge"]) != "evalgate:1:purge\n3" {
        assert!(started.elapsed() < DEADLINE, "the instances resubscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_while_redis_is_down_is_applied_everywhere_once_it_is_back() {
    let mut redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let mut config = fleet_config(&upstream, &redis, RESYNC_MS);
    config.shared_cache.breaker_failures = 2;
    let nodes = fleet(&config, &["a", "b", "c"]).await;
    fill(&nodes, &[KEY, KEY2]).await;
    let peers: Vec<&Node> = nodes[1..].iter().collect();

    redis.kill();
    upstream.update(|s| s.version = 1);
    let answer = nodes[0].purge(&format!("?deployment={KEY}")).await;
    assert_eq!(answer["fanout"], "pending");
    // The purging instance dropped its own entries at once.
    let got = nodes[0].get("u-a", KEY).await;
    assert_eq!((got.x_cache(), tier(&got)), ("MISS", "upstream"));
    assert_eq!(version(&got), 1);
    for node in &nodes {
        tokio::time::timeout(DEADLINE, node.shared().until(false))
            .await
            .unwrap_or_else(|_| panic!("{}: the tier turned off", node.name));
    }
    let purged: Vec<u64> = peers.iter().map(|n| n.all_purges()).collect();

    redis.restart();
    for node in &nodes {
        node.until_up().await;
    }
    for (peer, before) in peers.iter().zip(purged) {
        assert!(
            peer.all_purges() > before,
            "{}: dropped its entries",
            peer.name
        );
    }
    refilled_everywhere(&nodes[1..], KEY, 1).await;
    for node in &nodes {
        for user in users(&nodes) {
            let got = node.get(&user, KEY).await;
            assert_eq!(version(&got), 1, "{} served a purged answer", node.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_that_times_out_is_replayed_and_nothing_purged_is_read_meanwhile() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    // The default breaker_failures (5): one timed-out purge alone does not open it.
    let config = fleet_config(&upstream, &redis, RESYNC_MS);
    let nodes = fleet(&config, &["a", "b", "c"]).await;
    fill(&nodes, &[KEY, KEY2]).await;
    let peers: Vec<&Node> = nodes[1..].iter().collect();
    let before = snapshot(&peers, |n| n.purges("deployment"));

    // Redis freezes for the one call of the purge.
    redis.stop();
    upstream.update(|s| s.version = 1);
    let answer = nodes[0].purge(&format!("?deployment={KEY}")).await;
    redis.cont();
    let back = Instant::now();
    assert_eq!(answer["fanout"], "pending");
    // Redis still holds the purged answers under the old generation: the purging
    // instance must not read them back before its purge reached Redis.
    for user in users(&nodes) {
        let got = nodes[0].get(&user, KEY).await;
        assert_eq!(
            version(&got),
            1,
            "a: {user} purged, served from {}",
            tier(&got)
        );
    }
    // The purge is replayed as soon as Redis answers again, and reaches the peers.
    let took = until_each_moves(&peers, &before, back, |n| n.purges("deployment")).await;
    eprintln!("timed-out purge: replayed to the peers after {took:?}");
    for (peer, took) in peers.iter().zip(&took) {
        // Within one resync interval of Redis answering (plus one call and a margin).
        assert!(
            *took < Duration::from_millis(RESYNC_MS + 100 + 400),
            "{}: {took:?}",
            peer.name
        );
    }
    for node in &nodes {
        node.until_up().await;
        for user in users(&nodes) {
            let got = node.get(&user, KEY).await;
            assert_eq!(version(&got), 1, "{} served a purged answer", node.name);
        }
        let got = node.get("u-a", KEY2).await;
        assert_eq!((version(&got), tier(&got)), (0, "l1"), "{}", node.name);
    }
}

/// How Redis loses the generations hash.
#[derive(Clone, Copy, Debug)]
enum Loss {
    Flush,
    Restart,
}

/// Entries in every L1 and in Redis, one deployment purged earlier; Redis then loses
/// everything: every instance drops its whole L1 at its next resync (a new epoch), so
/// neither the purged answer nor any other from before comes back.
async fn redis_loses_the_generations(loss: Loss) {
    let mut redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let config = fleet_config(&upstream, &redis, RESYNC_MS);
    let nodes = fleet(&config, &["a", "b", "c"]).await;
    let all: Vec<&Node> = nodes.iter().collect();
    fill(&nodes, &[KEY, KEY2]).await;
    upstream.update(|s| s.version = 1);
    let before = snapshot(&all[1..], |n| n.purges("deployment"));
    assert_eq!(
        nodes[0].purge(&format!("?deployment={KEY}")).await["fanout"],
        "sent"
    );
    until_each_moves(&all[1..], &before, Instant::now(), |n| {
        n.purges("deployment")
    })
    .await;
    refilled_everywhere(&nodes, KEY, 1).await;
    let gens = "evalgate:1:gens";
    let epoch = redis.cmd(&["HGET", gens, "epoch"]);
    assert!(!epoch.is_empty());
    assert!(
        redis.keys().keys().any(|k| k.ends_with(":v")),
        "entries in Redis"
    );

    upstream.update(|s| s.version = 2);
    let before = snapshot(&all, |n| n.purges("all"));
    match loss {
        Loss::Flush => assert_eq!(redis.cmd(&["FLUSHALL"]), "OK"),
        Loss::Restart => redis.restart(),
    }
    let lost = Instant::now();
    let took = until_each_moves(&all, &before, lost, |n| n.purges("all")).await;
    eprintln!("{loss:?}: every instance dropped its L1 after {took:?}");
    for (node, took) in nodes.iter().zip(&took) {
        // At the next resync: within one interval, two when the first one after a
        // restart still fails while the connection comes back; plus a margin for a slow VM.
        assert!(
            *took < Duration::from_millis(2 * RESYNC_MS + 400),
            "{}: {took:?}",
            node.name
        );
    }
    for node in &nodes {
        node.until_up().await;
    }
    let new_epoch = redis.cmd(&["HGET", gens, "epoch"]);
    assert!(!new_epoch.is_empty() && new_epoch != epoch, "a new epoch");
    refilled_everywhere(&nodes, KEY, 2).await;
    refilled_everywhere(&nodes, KEY2, 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_redis_makes_every_instance_drop_its_l1() {
    redis_loses_the_generations(Loss::Flush).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restarted_empty_makes_every_instance_drop_its_l1() {
    redis_loses_the_generations(Loss::Restart).await;
}

/// Flag-poll requests (`/sdk/v2/flags?v=0`) the upstream received.
fn polls(upstream: &FakeUpstream) -> usize {
    upstream
        .requests()
        .iter()
        .filter(|r| r.path_and_query == "/sdk/v2/flags?v=0")
        .count()
}

const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// The window over which polls are counted.
const POLL_WINDOW: Duration = Duration::from_millis(3500);

/// Instances (one per name) that poll `KEY`'s flags every second (with the tier when
/// `redis`), each having served `KEY`; returns once the first poll arrived.
async fn polling_fleet(
    upstream: &FakeUpstream,
    redis: Option<&RedisServer>,
    names: &[&'static str],
) -> Vec<Node> {
    upstream.update(|s| s.flags = Some(vec![("a", 1), ("b", 1)]));
    let mut config = match redis {
        Some(redis) => fleet_config(upstream, redis, RESYNC_MS),
        None => {
            let mut config = config_for(&upstream.url());
            config.cache.ttl_s = 3600;
            config
        }
    };
    config.invalidation.flags_url = upstream.url();
    config.invalidation.poll_interval_s = POLL_INTERVAL.as_secs();
    let nodes = match redis {
        Some(_) => fleet(&config, names).await,
        None => {
            let mut nodes = Vec::new();
            for &name in names {
                let gateway = Gateway::new(config.clone().validate().unwrap()).unwrap();
                let server = TestGateway::start_with_admin(gateway.clone()).await;
                nodes.push(Node {
                    name,
                    gateway,
                    server,
                });
            }
            nodes
        }
    };
    for (node, user) in nodes.iter().zip(users(&nodes)) {
        node.get(&user, KEY).await;
        assert_eq!(node.gateway.served_deployments(), vec![KEY.to_string()]);
    }
    let started = Instant::now();
    while polls(upstream) == 0 {
        assert!(started.elapsed() < DEADLINE, "the flags were polled");
        upstream.wait_for(upstream.count() + 1).await;
    }
    nodes
}

/// Polls that arrive within [`POLL_WINDOW`], and the window's exact length.
async fn polls_over_window(upstream: &FakeUpstream) -> (usize, Duration) {
    let before = polls(upstream);
    let started = Instant::now();
    // Counting a rate: the window itself is what is awaited.
    tokio::time::sleep(POLL_WINDOW).await;
    (polls(upstream) - before, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_polls_each_deployment_once_per_interval_and_purges_it_everywhere() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let nodes = polling_fleet(&upstream, Some(&redis), &["a", "b", "c"]).await;
    for node in &nodes {
        let got = node.get(&format!("u-{}", node.name), KEY).await;
        assert_eq!((got.x_cache(), tier(&got)), ("HIT", "l1"));
    }

    let (count, window) = polls_over_window(&upstream).await;
    let intervals = (window.as_millis() / POLL_INTERVAL.as_millis()) as usize;
    // A lease call that fails makes that instance poll for itself (as a single box), so
    // each failed lease may add one poll.
    let lease_errors: u64 = nodes
        .iter()
        .map(|n| n.shared().metrics().count("lease", "error"))
        .sum();
    eprintln!("with the tier: {count} polls in {window:?} (lease errors: {lease_errors})");
    assert!(count >= 1, "somebody polls");
    assert!(
        count <= intervals + 1 + lease_errors as usize,
        "{count} polls in {window:?}: one per interval for the whole fleet"
    );
    let won: u64 = nodes
        .iter()
        .map(|n| n.shared().metrics().count("lease", "won"))
        .sum();
    let lost: u64 = nodes
        .iter()
        .map(|n| n.shared().metrics().count("lease", "lost"))
        .sum();
    assert!(
        lost >= won,
        "the others lost the lease: won {won}, lost {lost}"
    );

    // A flag's version changes upstream, and the answers with it.
    let all: Vec<&Node> = nodes.iter().collect();
    let before = snapshot(&all, |n| n.purges("deployment"));
    upstream.update(|s| {
        s.flags = Some(vec![("a", 1), ("b", 2)]);
        s.version = 1;
    });
    let changed = Instant::now();
    let took = until_each_moves(&all, &before, changed, |n| n.purges("deployment")).await;
    eprintln!("flag change: every instance purged after {took:?}");
    for (node, took) in nodes.iter().zip(&took) {
        // The next lease is won at most one interval after the last, whose poll may
        // just have missed the change: two intervals, plus a margin for this slow VM.
        assert!(
            *took < 2 * POLL_INTERVAL + Duration::from_millis(700),
            "{}: {took:?}",
            node.name
        );
    }
    for node in &nodes {
        let got = node.get(&format!("u-{}", node.name), KEY).await;
        assert_ne!(tier(&got), "l1", "{}: purged", node.name);
        assert_eq!(version(&got), 1, "{}", node.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_tier_every_instance_polls_for_itself() {
    let upstream = FakeUpstream::start().await;
    let _nodes = polling_fleet(&upstream, None, &["a", "b", "c"]).await;
    let (count, window) = polls_over_window(&upstream).await;
    let intervals = (window.as_millis() / POLL_INTERVAL.as_millis()) as usize;
    eprintln!("without the tier: {count} polls in {window:?}");
    // Each of the three polls on each of its ticks: three per interval.
    assert!(
        count >= 3 * intervals,
        "{count} polls in {window:?}: each instance polls itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_with_the_tier_polls_every_interval() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let nodes = polling_fleet(&upstream, Some(&redis), &["a"]).await;
    let (count, window) = polls_over_window(&upstream).await;
    let intervals = (window.as_millis() / POLL_INTERVAL.as_millis()) as usize;
    let lease = |result| nodes[0].shared().metrics().count("lease", result);
    eprintln!(
        "one instance with the tier: {count} polls in {window:?} (lease won {}, lost {})",
        lease("won"),
        lease("lost")
    );
    // The lease costs a lone instance (or the fleet's current poller) no poll: answers
    // stay fresh within one poll interval, as on a single box.
    assert!(
        count >= intervals,
        "{count} polls in {window:?}: one per interval"
    );
}

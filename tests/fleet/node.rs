//! The fleet the `fleet_*` tests run: in-process gateways, each with its admin listener,
//! sharing one real `redis-server` and one counting upstream; and what the tests observe of
//! each instance (its purges, announcements, resyncs, answers).
#![allow(dead_code)] // each test file uses a part

use std::time::{Duration, Instant};

use evalgate::Gateway;
use http::Method;

use crate::support::redis::RedisServer;
use crate::support::*;

/// The resync interval of most tests: short, so a missed announcement costs little time.
pub const RESYNC_MS: u64 = 300;
/// The resync interval where the announcement path is measured: the default, so that a
/// propagation "well under" it cannot have come from a resync.
pub const ANNOUNCE_RESYNC_MS: u64 = 2000;
/// The longest any awaited event may take before a test fails (a bound on loops, not a
/// speed threshold).
pub const DEADLINE: Duration = Duration::from_secs(10);

/// One instance of the fleet: its gateway (for in-process metrics) and its listeners.
pub struct Node {
    pub name: &'static str,
    pub gateway: Gateway,
    pub server: TestGateway,
}

impl Node {
    pub fn shared(&self) -> &evalgate::shared_cache::SharedCache {
        self.gateway.shared_cache().expect("the tier is configured")
    }

    /// `evalgate_purges_total{scope}`: purges applied to this instance's L1.
    pub fn purges(&self, scope: &str) -> u64 {
        metric(
            &self.gateway.metrics().encode(),
            &format!("evalgate_purges_total{{scope=\"{scope}\"}}"),
        )
    }

    /// Purges of either scope applied here.
    pub fn all_purges(&self) -> u64 {
        self.purges("all") + self.purges("deployment")
    }

    /// Awaits the tier being in use again, as its state and `evalgate_shared_cache_up`
    /// report it.
    pub async fn until_up(&self) {
        let up = tokio::time::timeout(DEADLINE, self.shared().until(true)).await;
        let gauge = metric(&self.gateway.metrics().encode(), "evalgate_shared_cache_up");
        assert!(
            up.is_ok() && gauge == 1,
            "{}: the tier is in use again (breaker closed: {}, evalgate_shared_cache_up {gauge})",
            self.name,
            self.shared().usable(),
        );
    }

    pub fn received(&self) -> u64 {
        self.shared().metrics().fanout()[1]
    }

    pub fn resync_changed(&self) -> u64 {
        self.shared().metrics().count("resync", "changed")
    }

    pub async fn get(&self, user: &str, key: &str) -> Got {
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
    pub async fn purge(&self, query: &str) -> serde_json::Value {
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
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no series {name}"))
        .trim()
        .parse()
        .expect("a counter value")
}

/// The tier that answered; answers from the instance's own memory carry no header: `l1`.
pub fn tier(got: &Got) -> &str {
    got.header("x-cache-tier").unwrap_or("l1")
}

/// The upstream's answer version written into an evaluation body.
pub fn version(got: &Got) -> u64 {
    got.json()["flag-echo"]["payload"]["version"]
        .as_u64()
        .expect("an evaluation echo")
}

/// A config for one instance of a fleet on `redis` with short timeouts.
pub fn fleet_config(
    upstream: &FakeUpstream,
    redis: &RedisServer,
    resync_ms: u64,
) -> evalgate::Config {
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
pub async fn fleet(config: &evalgate::Config, names: &[&'static str]) -> Vec<Node> {
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
pub fn users(nodes: &[Node]) -> Vec<String> {
    nodes.iter().map(|n| format!("u-{}", n.name)).collect()
}

/// Every instance asks for every user under every key, then holds each in its L1.
pub async fn fill(nodes: &[Node], keys: &[&str]) {
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
pub fn snapshot(nodes: &[&Node], value: impl Fn(&Node) -> u64) -> Vec<u64> {
    nodes.iter().map(|n| value(n)).collect()
}

/// Polls every node's `value` until it differs from `start` (taken before the event);
/// returns how long each took, from `since`. Fails after [`DEADLINE`].
pub async fn until_each_moves(
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
pub async fn refilled_everywhere(nodes: &[Node], key: &str, now: u64) {
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

//! Flag-change invalidation across a fleet (issue 13): with the shared tier, the fleet
//! polls each deployment's flags once per interval in all (a lease in Redis, renewed by
//! its holder), and a change seen by the poller purges the deployment on every instance;
//! without the tier every instance polls for itself.

#[path = "fleet/node.rs"]
mod node;
mod support;

use std::time::{Duration, Instant};

use evalgate::Gateway;
use node::*;
use support::redis::RedisServer;
use support::*;

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

//! Redis failing under a fleet never fails or stalls a request (issue 13): gateways sharing
//! one real `redis-server` keep answering every request with the upstream's answer while
//! Redis is killed, frozen, full, restarted empty or loses its pub/sub connection; no request
//! takes longer than one Redis timeout plus the upstream's own time (and a margin, below);
//! the tier turns off and comes back; a purged answer is never served again once the fleet
//! has caught up.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use evalgate::gateway::PurgeScope;
use evalgate::shared_cache::{Fanout, SharedCache};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use support::redis::RedisServer;
use support::*;

/// The upstream's own time for every answer.
const UPSTREAM_DELAY: Duration = Duration::from_millis(20);
/// `shared_cache.timeout_ms`: the bound on any one Redis call.
const REDIS_TIMEOUT_MS: u64 = 100;
/// The slowest a request may be: one Redis timeout plus the upstream's own time, plus a
/// margin. The margin covers (a) a fault landing between a read that found another
/// instance's fill lock and the first look for its value: one more Redis call (bounded by
/// the same timeout) and the lock holder's fetch (the upstream's time) plus one wait poll
/// (20 ms), 140 ms in all; (b) scheduling on this VM: two cores shared with other builds,
/// where a tokio timer or a loopback round trip is at times 100 ms late. A stall the bound
/// is here to catch is a Redis call that is not cut (a frozen Redis: forever) or a wait for
/// a fill lock that outlives its holder's write (`upstream.timeout_ms`: 10 s).
const MARGIN: Duration = Duration::from_millis(300);
/// Concurrent clients of the load loop, and the most requests each sends.
const CLIENTS: usize = 4;
const MAX_REQUESTS_PER_CLIENT: usize = 3000;
/// The load loop ends by then whatever happens (each test stops it much earlier).
const LOAD_DEADLINE: Duration = Duration::from_secs(20);
/// Repeated keys (asked again and again, on every instance) besides the fresh ones.
const REPEATED: usize = 16;
/// How long the tier may take to turn off or on, or the fleet to see a purge, before a
/// test fails; generous: the real times are a few breaker periods (≤ 400 ms each).
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

fn bound() -> Duration {
    Duration::from_millis(REDIS_TIMEOUT_MS) + UPSTREAM_DELAY + MARGIN
}

/// One gateway of the fleet.
struct Node {
    gateway: evalgate::Gateway,
    server: TestGateway,
}

impl Node {
    fn tier(&self) -> &SharedCache {
        self.gateway.shared_cache().expect("the tier is configured")
    }
}

/// A fleet of `n` gateways on one Redis and one upstream, each with its tier in use.
async fn fleet(n: usize, upstream: &FakeUpstream, redis_url: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        let mut config = config_for(&upstream.url());
        let sc = &mut config.shared_cache;
        sc.url = redis_url.to_string();
        sc.key_secret = "fleet-faults-secret".into();
        sc.timeout_ms = REDIS_TIMEOUT_MS;
        sc.connect_timeout_ms = 200;
        sc.breaker_failures = 3;
        sc.breaker_open_ms = 100;
        sc.breaker_max_open_ms = 400;
        sc.resync_interval_ms = 300;
        let gateway = evalgate::Gateway::new(config.validate().unwrap()).unwrap();
        let server = TestGateway::start_gateway(gateway.clone()).await;
        nodes.push(Node { gateway, server });
    }
    all_until(&nodes, true).await;
    nodes
}

/// Waits until every node's tier is in use (`true`) or off.
async fn all_until(nodes: &[Node], up: bool) {
    for (i, node) in nodes.iter().enumerate() {
        tokio::time::timeout(EVENT_TIMEOUT, node.tier().until(up))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "node {i}: tier not {} within {EVENT_TIMEOUT:?}",
                    if up { "on" } else { "off" }
                )
            });
    }
}

fn user_url(node: &Node, user: &str) -> String {
    node.server.url(&format!("/v1/vardata?user_id={user}"))
}

/// One answer the load loop saw.
#[derive(Debug, Clone)]
struct Seen {
    node: usize,
    user: String,
    started: Instant,
    latency: Duration,
    /// `Err` says what was wrong with the answer (or that there was none).
    outcome: Result<Answer, String>,
}

#[derive(Debug, Clone)]
struct Answer {
    version: u64,
    tier: String,
}

/// Checks that `got` is the upstream's answer for `user`: a 200 whose body echoes this
/// deployment key and this user; returns the upstream version it carries.
fn check(
    status: StatusCode,
    tier: Option<&str>,
    body: &[u8],
    user: &str,
) -> Result<Answer, String> {
    if status != StatusCode::OK {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let payload = &json["flag-echo"]["payload"];
    let query = payload["query"].as_str().unwrap_or("");
    if payload["key"] != KEY || !query.contains(user) {
        return Err(format!("not the upstream's answer for {user}: {json}"));
    }
    Ok(Answer {
        version: payload["version"].as_u64().ok_or("no version")?,
        tier: tier.unwrap_or("").to_string(),
    })
}

/// Sends one GET and checks the answer; a request that does not end within 5 s is a
/// failure (it would otherwise hang the test).
async fn ask(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    user: &str,
) -> Result<Answer, String> {
    let request = Request::builder()
        .method(Method::GET)
        .uri(url)
        .header("authorization", format!("Api-Key {KEY}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        let tier = parts
            .headers
            .get("x-cache-tier")
            .and_then(|v| v.to_str().ok());
        check(parts.status, tier, &body, user)
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(outcome) => outcome,
        Err(_) => Err("no answer within 5 s".into()),
    }
}

/// A bounded load loop: `CLIENTS` clients, round-robin over the fleet, half fresh keys (a
/// miss on every instance: each asks Redis) and half `REPEATED` keys asked everywhere.
struct Load {
    stop: Arc<AtomicBool>,
    done: watch::Receiver<usize>,
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(nodes: &[Node]) -> Load {
        let urls: Vec<String> = nodes.iter().map(|n| n.server.url("")).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let (count, done) = watch::channel(0usize);
        let count = Arc::new(count);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let began = Instant::now();
        let tasks = (0..CLIENTS)
            .map(|c| {
                let (urls, stop, count, seen) =
                    (urls.clone(), stop.clone(), count.clone(), seen.clone());
                tokio::spawn(async move {
                    let http = client();
                    for i in 0..MAX_REQUESTS_PER_CLIENT {
                        if stop.load(Ordering::SeqCst) || began.elapsed() > LOAD_DEADLINE {
                            break;
                        }
                        let node = (c + i) % urls.len();
                        let user = if i % 2 == 0 {
                            format!("u-c{c}-{i:05}")
                        } else {
                            format!("u-r{:05}", (i / 2 + c) % REPEATED)
                        };
                        let url = format!("{}/v1/vardata?user_id={user}", urls[node]);
                        let started = Instant::now();
                        let outcome = ask(&http, &url, &user).await;
                        let latency = started.elapsed();
                        seen.lock().unwrap().push(Seen {
                            node,
                            user,
                            started,
                            latency,
                            outcome,
                        });
                        count.send_modify(|n| *n += 1);
                    }
                })
            })
            .collect();
        Load {
            stop,
            done,
            seen,
            tasks,
        }
    }

    /// Waits until `more` further answers have been seen (the load goes on meanwhile).
    async fn more(&mut self, more: usize) {
        let target = *self.done.borrow() + more;
        tokio::time::timeout(EVENT_TIMEOUT * 2, self.done.wait_for(|n| *n >= target))
            .await
            .unwrap_or_else(|_| panic!("the load loop did not reach {target} answers"))
            .unwrap();
    }

    /// Stops the loop and returns everything it saw.
    async fn finish(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a load client panicked");
        }
        let seen = self.seen.lock().unwrap().clone();
        seen
    }
}

/// The load's verdict: every answer was the upstream's, none slower than [`bound`].
/// Returns the slowest.
fn assert_all_answered(seen: &[Seen], fault: &str) -> Duration {
    assert!(seen.len() >= 100, "{fault}: only {} answers", seen.len());
    let failed: Vec<&Seen> = seen.iter().filter(|s| s.outcome.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{fault}: {} of {} requests failed, e.g. {:?}",
        failed.len(),
        seen.len(),
        &failed[..failed.len().min(5)]
    );
    let slowest = seen.iter().max_by_key(|s| s.latency).unwrap();
    let mut latencies: Vec<Duration> = seen.iter().map(|s| s.latency).collect();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!(
        "{fault}: {} answers, p99 {p99:?}, slowest {:?} (node {}, {}), bound {:?}",
        seen.len(),
        slowest.latency,
        slowest.node,
        slowest.user,
        bound()
    );
    assert!(
        slowest.latency <= bound(),
        "{fault}: a request took {:?} (node {}, {}), more than the Redis timeout + the upstream's time + margin ({:?})",
        slowest.latency,
        slowest.node,
        slowest.user,
        bound()
    );
    slowest.latency
}

/// Answers that started at or after `since` and carry an upstream version older than
/// `version`: purged answers served again.
fn assert_no_purged_answer(seen: &[Seen], since: Instant, version: u64, fault: &str) {
    let resurrected: Vec<&Seen> = seen
        .iter()
        .filter(|s| s.started >= since)
        .filter(|s| s.outcome.as_ref().is_ok_and(|a| a.version < version))
        .collect();
    let checked = seen.iter().filter(|s| s.started >= since).count();
    assert!(
        checked > 0,
        "{fault}: no answer after the purge was checked"
    );
    assert!(
        resurrected.is_empty(),
        "{fault}: {} purged answers served again, e.g. {:?}",
        resurrected.len(),
        &resurrected[..resurrected.len().min(5)]
    );
}

/// A fresh key asked on node `from` then on node `to` is answered from Redis on `to`:
/// the tier is in use across instances again.
async fn assert_l2_across(
    nodes: &[Node],
    upstream: &FakeUpstream,
    from: usize,
    to: usize,
    user: &str,
) {
    let http = client();
    let before = upstream.count();
    let first = ask(&http, &user_url(&nodes[from], user), user)
        .await
        .unwrap();
    assert_eq!(first.tier, "upstream", "{user} on node {from}");
    let second = ask(&http, &user_url(&nodes[to], user), user).await.unwrap();
    assert_eq!(
        second.tier, "l2",
        "{user} on node {to}: the fill from node {from} in Redis"
    );
    assert_eq!(
        upstream.count(),
        before + 1,
        "one upstream request for {user}"
    );
}

/// Bumps the upstream's answers to `version` and purges `KEY` on `node`; returns what
/// became of the purge beyond it.
async fn purge_with_new_answers(upstream: &FakeUpstream, node: &Node, version: u64) -> Fanout {
    upstream.update(|s| s.version = version);
    node.gateway
        .purge(&PurgeScope::Deployment(KEY.to_string()))
        .await
        .expect("the tier is configured")
}

/// Asks `user` on every node until each answers `version`, within `EVENT_TIMEOUT`; returns
/// when the whole fleet serves it.
async fn until_fleet_serves(nodes: &[Node], user: &str, version: u64) -> Instant {
    let http = client();
    let deadline = Instant::now() + EVENT_TIMEOUT;
    for (i, node) in nodes.iter().enumerate() {
        loop {
            let got = ask(&http, &user_url(node, user), user).await.unwrap();
            if got.version >= version {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} still serves version {} of {user} {EVENT_TIMEOUT:?} after the purge",
                got.version
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Instant::now()
}

fn ops(nodes: &[Node], op: &str, result: &str) -> u64 {
    nodes
        .iter()
        .map(|n| n.tier().metrics().count(op, result))
        .sum()
}

async fn upstream() -> FakeUpstream {
    let upstream = FakeUpstream::start().await;
    upstream.set_delay(UPSTREAM_DELAY);
    upstream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_then_restarted() {
    let mut redis = RedisServer::start();
    let upstream = upstream().await;
    let nodes = fleet(3, &upstream, &redis.url()).await;
    assert_l2_across(&nodes, &upstream, 0, 1, "u-before").await;

    let mut load = Load::start(&nodes);
    load.more(60).await;
    redis.kill();
    all_until(&nodes, false).await;
    load.more(60).await;
    // A purge while Redis is down: pending, replayed when it is back.
    assert_eq!(
        purge_with_new_answers(&upstream, &nodes[0], 1).await,
        Fanout::Pending
    );
    load.more(60).await;
    redis.restart();
    all_until(&nodes, true).await;
    let caught_up = until_fleet_serves(&nodes, "u-r00001", 1).await;
    load.more(60).await;
    let seen = load.finish().await;

    assert_all_answered(&seen, "SIGKILL");
    assert_no_purged_answer(&seen, caught_up, 1, "SIGKILL");
    assert!(
        ops(&nodes, "read", "error") + ops(&nodes, "read", "timeout") > 0,
        "reads failed while Redis was down"
    );
    assert!(
        ops(&nodes, "read", "skipped") > 0,
        "the breaker skipped reads"
    );
    assert_l2_across(&nodes, &upstream, 1, 2, "u-after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_then_continued() {
    let redis = RedisServer::start();
    let upstream = upstream().await;
    let nodes = fleet(3, &upstream, &redis.url()).await;

    let mut load = Load::start(&nodes);
    load.more(60).await;
    redis.stop();
    all_until(&nodes, false).await;
    load.more(60).await;
    // The purge's own Redis call is cut by the timeout too: pending.
    assert_eq!(
        purge_with_new_answers(&upstream, &nodes[0], 1).await,
        Fanout::Pending
    );
    load.more(60).await;
    redis.cont();
    all_until(&nodes, true).await;
    let caught_up = until_fleet_serves(&nodes, "u-r00001", 1).await;
    load.more(60).await;
    let seen = load.finish().await;

    assert_all_answered(&seen, "SIGSTOP");
    assert_no_purged_answer(&seen, caught_up, 1, "SIGSTOP");
    // Nothing queued behind the frozen server: calls made then were cut by the timeout,
    // and once the breaker opened the rest were not made at all.
    assert!(
        ops(&nodes, "read", "timeout") > 0,
        "reads timed out while Redis was frozen"
    );
    assert!(
        ops(&nodes, "read", "skipped") > 0,
        "the breaker skipped reads"
    );
    for (i, node) in nodes.iter().enumerate() {
        tokio::time::timeout(EVENT_TIMEOUT, async {
            while node.tier().status().pending_writes > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("node {i}: writes still pending after Redis came back"));
    }
    assert_l2_across(&nodes, &upstream, 2, 0, "u-after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_full_with_nothing_evictable() {
    // 2 MB rather than 1: an empty redis-server already uses about 0.9 MB, and the fleet's
    // own connections need some room before the filler goes in.
    let redis =
        RedisServer::start_with(&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]);
    let upstream = upstream().await;
    let nodes = fleet(3, &upstream, &redis.url()).await;
    // Written while there is room: readable from Redis later.
    assert_l2_across(&nodes, &upstream, 0, 1, "u-before").await;
    tokio::time::timeout(EVENT_TIMEOUT, async {
        while ops(&nodes, "write", "ok") == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the first fill reached Redis");
    // One raw value past maxmemory: from now on every write is refused with OOM.
    redis.cmd(&["SETRANGE", "filler", "2097152", "x"]);
    let refused = redis.try_cmd(&["SET", "probe", "x"]).unwrap_err();
    assert!(refused.starts_with("OOM"), "{refused}");
    let write_errors = ops(&nodes, "write", "error");

    let mut load = Load::start(&nodes);
    load.more(200).await;
    let seen = load.finish().await;

    assert_all_answered(&seen, "OOM");
    assert!(
        ops(&nodes, "write", "error") > write_errors,
        "refused writes are counted"
    );
    for (i, node) in nodes.iter().enumerate() {
        assert!(
            node.tier().usable(),
            "node {i}: OOM replies turned the tier off"
        );
    }
    assert_eq!(
        ops(&nodes, "read", "skipped"),
        0,
        "no read skipped by the breaker"
    );
    // Reads still work: the entry written before memory filled is found on the third node.
    let http = client();
    let got = ask(&http, &user_url(&nodes[2], "u-before"), "u-before")
        .await
        .unwrap();
    assert_eq!(got.tier, "l2");

    // A purge Redis cannot record (its generation is a write) stays pending, and the
    // instance that made it does not read the purged answer back from Redis.
    assert_eq!(
        purge_with_new_answers(&upstream, &nodes[1], 1).await,
        Fanout::Pending
    );
    let got = ask(&http, &user_url(&nodes[1], "u-before"), "u-before")
        .await
        .unwrap();
    assert_eq!(
        (got.version, got.tier.as_str()),
        (1, "upstream"),
        "the purged answer came back from Redis"
    );
    // Once Redis has room again the purge is replayed, and the whole fleet serves the
    // new answers.
    redis.cmd(&["DEL", "filler"]);
    until_fleet_serves(&nodes, "u-before", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_after_a_purge_it_missed() {
    let mut redis = RedisServer::start();
    let upstream = upstream().await;
    let nodes = fleet(2, &upstream, &redis.url()).await;
    // A and B both hold the answer (B from Redis).
    let http = client();
    let held = "u-held";
    assert_l2_across(&nodes, &upstream, 0, 1, held).await;

    let mut load = Load::start(&nodes);
    load.more(60).await;
    redis.kill();
    all_until(&nodes, false).await;
    assert_eq!(
        purge_with_new_answers(&upstream, &nodes[0], 1).await,
        Fanout::Pending
    );
    let on_a = ask(&http, &user_url(&nodes[0], held), held).await.unwrap();
    assert_eq!(on_a.version, 1, "A dropped its own copy at once");
    load.more(60).await;
    redis.restart();
    all_until(&nodes, true).await;
    // Back in use means resynced: both saw the new epoch and dropped their L1.
    let back = Instant::now();
    for (i, node) in nodes.iter().enumerate() {
        let got = ask(&http, &user_url(node, held), held).await.unwrap();
        assert_eq!(got.version, 1, "node {i} served the purged answer again");
    }
    load.more(60).await;
    let seen = load.finish().await;

    assert_all_answered(&seen, "restarted empty");
    assert_no_purged_answer(&seen, back, 1, "restarted empty");
    assert_l2_across(&nodes, &upstream, 1, 0, "u-after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_connection_dropped() {
    let redis = RedisServer::start();
    let upstream = upstream().await;
    let nodes = fleet(3, &upstream, &redis.url()).await;
    let subscribers = || {
        redis
            .cmd(&["CLIENT", "LIST", "TYPE", "pubsub"])
            .lines()
            .filter(|l| !l.is_empty())
            .count()
    };
    assert_eq!(subscribers(), 3);

    let mut load = Load::start(&nodes);
    load.more(60).await;
    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    load.more(30).await;
    // Every instance subscribes again (within its reconnect backoff).
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while subscribers() < 3 {
        assert!(
            Instant::now() < deadline,
            "the subscribers did not come back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A purge on A reaches B and C through the channel again.
    let received: Vec<u64> = nodes
        .iter()
        .map(|n| n.tier().metrics().fanout()[1])
        .collect();
    assert_eq!(
        purge_with_new_answers(&upstream, &nodes[0], 1).await,
        Fanout::Sent
    );
    for (i, node) in nodes.iter().enumerate().skip(1) {
        tokio::time::timeout(EVENT_TIMEOUT, async {
            while node.tier().metrics().fanout()[1] <= received[i] {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("node {i} did not receive the purge"));
    }
    let caught_up = until_fleet_serves(&nodes, "u-r00001", 1).await;
    load.more(60).await;
    let seen = load.finish().await;

    assert_all_answered(&seen, "pub/sub dropped");
    assert_no_purged_answer(&seen, caught_up, 1, "pub/sub dropped");
    for (i, node) in nodes.iter().enumerate() {
        assert!(
            node.tier().usable(),
            "node {i}: a lost subscription turned the tier off"
        );
    }
    assert_l2_across(&nodes, &upstream, 0, 2, "u-after").await;
}

/// A fill lock taken just before Redis froze, whose write the breaker then skipped, must
/// not make a peer wait for it once Redis is back (the lock lives `upstream.timeout_ms`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_lock_left_during_a_freeze_does_not_stall_peers() {
    let redis = RedisServer::start();
    let upstream = upstream().await;
    upstream.update(|s| s.hold = Some("u-orphan"));
    let nodes = fleet(2, &upstream, &redis.url()).await;
    let http = client();

    // A takes the fill lock and fetches; the upstream holds the answer.
    let url = user_url(&nodes[0], "u-orphan");
    let fill = tokio::spawn({
        let http = http.clone();
        async move { ask(&http, &url, "u-orphan").await }
    });
    upstream.wait_for(1).await;
    let locks = || {
        redis
            .keys()
            .into_keys()
            .filter(|k| k.ends_with(":l"))
            .count()
    };
    assert_eq!(locks(), 1, "A holds the fill lock");

    // Redis freezes; A's next calls time out and its breaker opens.
    redis.stop();
    for i in 0..10 {
        if !nodes[0].tier().usable() {
            break;
        }
        let user = format!("u-fresh-{i:02}");
        ask(&http, &user_url(&nodes[0], &user), &user)
            .await
            .unwrap();
    }
    tokio::time::timeout(EVENT_TIMEOUT, nodes[0].tier().until(false))
        .await
        .expect("A's tier turned off");
    // The answer lands while the tier is off: its write is skipped, the lock stays.
    upstream.release_held();
    assert_eq!(fill.await.unwrap().unwrap().version, 0);

    redis.cont();
    all_until(&nodes, true).await;
    assert_eq!(
        locks(),
        0,
        "A released the lock it left behind once Redis was back"
    );
    let started = Instant::now();
    let got = ask(&http, &user_url(&nodes[1], "u-orphan"), "u-orphan").await;
    let took = started.elapsed();
    assert!(got.is_ok(), "{got:?}");
    assert!(
        took <= bound(),
        "B waited {took:?} for a lock nobody will fill (bound {:?})",
        bound()
    );
}

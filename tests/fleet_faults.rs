//! Redis failing under a fleet never fails or stalls a request (issue 13): gateways sharing
//! one real `redis-server` keep answering every request with the upstream's answer while
//! Redis is killed, frozen, full, restarted empty or loses its pub/sub connection; no request
//! takes longer than one Redis timeout plus the upstream's own time (and a margin, see
//! `load::MARGIN`); the tier turns off and comes back; a purged answer is never served
//! again once the fleet has caught up. Two narrower tests pin down what the load loops
//! found: a fill lock left during a freeze, and the breaker opening during a resync.
//!
//! `fleet_faults/fleet.rs` builds the fleet and asks it; `fleet_faults/load.rs` is the
//! bounded load loop (4 clients, fresh and repeated keys, round robin) and its verdicts.

mod support;

#[path = "fleet_faults/fleet.rs"]
mod fleet;
#[path = "fleet_faults/load.rs"]
mod load;

use std::time::Duration;

use evalgate::shared_cache::Fanout;
use tokio::time::Instant;

use fleet::*;
use load::*;
use support::redis::RedisServer;
use support::*;

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

    // A purge is a few bytes: the generation scripts may go past maxmemory, so a full
    // Redis still records it and the fleet is told at once; nothing purged is read back.
    assert_eq!(
        purge_with_new_answers(&upstream, &nodes[1], 1).await,
        Fanout::Sent
    );
    let got = ask(&http, &user_url(&nodes[1], "u-before"), "u-before")
        .await
        .unwrap();
    assert_eq!(
        (got.version, got.tier.as_str()),
        (1, "upstream"),
        "the purged answer came back from Redis"
    );
    until_fleet_serves(&nodes, "u-before", 1).await;
    redis.cmd(&["DEL", "filler"]);
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
    // Held locks: a released one is a one-second `-` mark (the fetch brought nothing).
    let locks = || {
        redis
            .keys()
            .into_iter()
            .filter(|(k, v)| k.ends_with(":l") && v.value.as_bytes() != Some(b"-"))
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
    // Released by A's maintenance once Redis answers: before the tier turns back on, or
    // (when a probe closed the breaker first) at its next resync; awaited, not raced.
    tokio::time::timeout(EVENT_TIMEOUT, async {
        while locks() != 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("A released the lock it left behind once Redis was back");
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

/// The breaker opening while the maintenance task resyncs (nobody waits for its wake-up
/// then) must not mark the tier off again once it is back in use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tier_stays_marked_on_after_opening_during_a_resync() {
    let redis = RedisServer::start();
    let upstream = upstream().await;
    // Resyncing nearly all the time: a frozen Redis opens the breaker inside a resync.
    let nodes = fleet_with(1, &upstream, &redis.url(), |sc| sc.resync_interval_ms = 10).await;
    for round in 0..3 {
        redis.stop();
        all_until(&nodes, false).await;
        redis.cont();
        all_until(&nodes, true).await;
        // Redis is fine now: 50 resync intervals later the tier is still marked on.
        let turned_off =
            tokio::time::timeout(Duration::from_millis(500), nodes[0].tier().until(false)).await;
        assert!(
            turned_off.is_err(),
            "round {round}: the tier is in use ({}) but marked off",
            nodes[0].tier().usable()
        );
    }
}

//! The bounded load loop that runs while a fault is injected, and its verdicts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::fleet::{Answer, EVENT_TIMEOUT, Node, REDIS_TIMEOUT_MS, UPSTREAM_DELAY, ask};
use crate::support::*;

/// The slowest a request may be: one Redis timeout plus the upstream's own time, plus a
/// margin. The margin covers (a) a fault landing between a read that found another
/// instance's fill lock and the first look for its value: one more Redis call (bounded by
/// the same timeout) and the lock holder's fetch (the upstream's time) plus one wait poll
/// (20 ms), 140 ms in all; (b) scheduling on this VM: two cores shared with other builds,
/// where a tokio timer or a loopback round trip is at times 100 ms late or more. A stall the bound
/// is here to catch is a Redis call that is not cut (a frozen Redis: forever) or a wait for
/// a fill lock that outlives its holder's write (`upstream.timeout_ms`: 10 s).
pub const MARGIN: Duration = Duration::from_millis(300);
/// Concurrent clients of the load loop, and the most requests each sends.
pub const CLIENTS: usize = 4;
pub const MAX_REQUESTS_PER_CLIENT: usize = 3000;
/// The load loop ends by then whatever happens (each test stops it much earlier).
pub const LOAD_DEADLINE: Duration = Duration::from_secs(20);
/// Repeated keys (asked again and again, on every instance) besides the fresh ones.
pub const REPEATED: usize = 16;

/// The slowest any request may be (see [`MARGIN`]).
pub fn bound() -> Duration {
    Duration::from_millis(REDIS_TIMEOUT_MS) + UPSTREAM_DELAY + MARGIN
}

/// One answer the load loop saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub node: usize,
    pub user: String,
    pub started: Instant,
    pub latency: Duration,
    /// `Err` says what was wrong with the answer (or that there was none).
    pub outcome: Result<Answer, String>,
}

/// A bounded load loop: `CLIENTS` clients, round-robin over the fleet, half fresh keys (a
/// miss on every instance: each asks Redis) and half `REPEATED` keys asked everywhere.
pub struct Load {
    pub stop: Arc<AtomicBool>,
    pub done: watch::Receiver<usize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub tasks: Vec<JoinHandle<()>>,
}

impl Load {
    pub fn start(nodes: &[Node]) -> Load {
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
    pub async fn more(&mut self, more: usize) {
        let target = *self.done.borrow() + more;
        tokio::time::timeout(EVENT_TIMEOUT * 2, self.done.wait_for(|n| *n >= target))
            .await
            .unwrap_or_else(|_| panic!("the load loop did not reach {target} answers"))
            .unwrap();
    }

    /// Stops the loop and returns everything it saw.
    pub async fn finish(self) -> Vec<Seen> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a load client panicked");
        }
        self.seen.lock().unwrap().clone()
    }
}

/// The load's verdict: every answer was the upstream's, none slower than [`bound`].
/// Returns the slowest.
pub fn assert_all_answered(seen: &[Seen], fault: &str) -> Duration {
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
pub fn assert_no_purged_answer(seen: &[Seen], since: Instant, version: u64, fault: &str) {
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

//! Pipelined upstream connections for cache fills (`upstream.pipeline_depth` > 1).
//!
//! With one request per connection, every miss costs two system calls on the upstream
//! side (a send and a receive) and one wake-up of the upstream process; on a fast local
//! upstream those are most of what a miss costs. Here the misses whose fetches start in
//! the same scheduler pass go out together, written in one go on one connection (a
//! *lane*), and their answers are read off it in order, however many arrive per read.
//!
//! A lane carries one batch at a time: it collects requests while idle, defers its flush
//! to the end of the current pass (`yield_now`) so that every miss of the pass can join,
//! writes the batch (at most `upstream.pipeline_depth` requests) and reads its answers;
//! only then does it take the next. So a request never waits behind an older batch, only
//! behind the ones that arrived with it, and an upstream that answers in parallel (RFC
//! 9112 §9.3.2 allows it for safe methods) costs no latency at all. Requests that find
//! no collecting or idle lane open a new one. This module schedules; [`lane`] drives one
//! connection.
//!
//! Only body-less GET and HEAD fills built from cache keys come here: they are safe to
//! send again. What happens to the requests of a batch that ends early:
//! - never written (the lane closed first, or found the upstream had closed it while it
//!   idled), or written after an answer that said `Connection: close` (the upstream does
//!   not process those): queued again, at no cost;
//! - written, and the connection ended before their answer began: once more on another
//!   lane; at most two attempts, as in [`super::pool`];
//! - the one whose answer had begun, or was unreadable: fails.
//!
//! A fill cancelled while its request waits to be written is never written. One whose
//! request is written stays on the wire, and its answer is read and dropped, so the
//! answers after it still reach their own requests; when every request of a batch still
//! unanswered was cancelled, the lane closes its connection at once rather than wait for
//! answers nobody wants, which frees the upstream of them too.
//!
//! An upstream that does not keep a connection for a second pipelined answer (HTTP/1.0,
//! `Connection: close` on every answer, a reset before any answer) makes the pipeline
//! send one request per lane for [`SOLO_FOR`]. A batch must be answered within
//! `upstream.timeout_ms`, or its lane is closed. Idle lanes close after
//! `upstream.pool_idle_timeout_ms`, or at once when the upstream closes them; at most
//! `upstream.pool_max_idle_per_host` stay.

mod lane;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::UpstreamResponse;
use super::pool;
use crate::error::UpstreamError;

/// How long the pipeline sends one request per lane after the upstream showed it does
/// not keep connections for pipelined requests.
pub(super) const SOLO_FOR: Duration = Duration::from_secs(60);

/// Pipelined connections to one upstream origin. Cheap to clone.
#[derive(Clone)]
pub(super) struct Pipeline {
    shared: Arc<Shared>,
}

/// What [`Pipeline::new`] needs besides the connector.
pub(super) struct Settings {
    pub origin: Uri,
    pub depth: usize,
    pub max_body: usize,
    pub max_idle: usize,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    pub answer_timeout: Duration,
}

struct Shared {
    connector: HttpsConnector<HttpConnector>,
    settings: Settings,
    /// The `Host` field every request carries.
    host: HeaderValue,
    lanes: Mutex<Lanes>,
}

#[derive(Default)]
struct Lanes {
    slots: Vec<Slot>,
    next_id: u64,
    /// One request per lane until then (see [`SOLO_FOR`]).
    solo_until: Option<Instant>,
}

/// One lane as the scheduler sees it; the connection itself lives in its driver task.
struct Slot {
    id: u64,
    phase: Phase,
    /// Requests waiting to be written, at most the depth.
    queued: Vec<Job>,
    /// Wakes the driver when a request joins an idle lane.
    wake: Arc<Notify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Connecting: requests may join, they go out once connected.
    Connecting,
    /// Open with nothing in flight.
    Idle,
    /// Requests queued; the driver writes them at the end of the pass.
    Collecting,
    /// A batch is written and being answered; nothing joins.
    Busy,
}

/// One request handed to a lane.
struct Job {
    /// The encoded request head.
    head: Bytes,
    method: Method,
    reply: oneshot::Sender<Result<UpstreamResponse, Failure>>,
}

/// How a job failed.
#[derive(Clone)]
enum Failure {
    /// Written, and the connection ended before its answer began: it may go once more.
    Unanswered(UpstreamError),
    Failed(UpstreamError),
}

/// What becomes of the requests still queued on a lane that closes.
enum Leftover {
    /// They go to another lane: the lane closed in an orderly way.
    Requeue,
    /// They fail so: the lane could not connect, or its task ended abnormally.
    Fail(Failure),
}

impl Pipeline {
    pub(super) fn new(connector: HttpsConnector<HttpConnector>, settings: Settings) -> Pipeline {
        Pipeline {
            shared: Arc::new(Shared {
                connector,
                host: pool::host_header(&settings.origin),
                settings,
                lanes: Mutex::new(Lanes::default()),
            }),
        }
    }

    /// The `Host` field requests on this pipeline carry.
    pub(super) fn host(&self) -> &HeaderValue {
        &self.shared.host
    }

    /// Sends a request (its encoded head: a GET or HEAD without a body, safe to send
    /// again) on a lane and reads its answer; once more on another lane if the first
    /// ended before answering it.
    pub(super) async fn exchange(
        &self,
        head: Bytes,
        method: Method,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let mut again = true;
        loop {
            let (reply, answer) = oneshot::channel();
            self.shared.submit(Job {
                head: head.clone(),
                method: method.clone(),
                reply,
            });
            let failure = match answer.await {
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(failure)) => failure,
                // The lane's task ended without a word (the runtime is shutting down).
                Err(_) => Failure::Unanswered(UpstreamError::Protocol(
                    "upstream connection dropped".into(),
                )),
            };
            match failure {
                Failure::Unanswered(_) if again => again = false,
                Failure::Unanswered(e) | Failure::Failed(e) => return Err(e),
            }
        }
    }

    /// Open lanes (connecting, idle or busy), for tests and stats.
    pub(super) fn lanes(&self) -> usize {
        self.shared.lock().slots.len()
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Lanes> {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job` on the lane collecting a batch, else an idle one, else one still
    /// connecting, else a new lane.
    fn submit(self: &Arc<Self>, job: Job) {
        let mut lanes = self.lock();
        let depth = match lanes.solo_until {
            Some(until) if Instant::now() < until => 1,
            _ => self.settings.depth,
        };
        let room = |s: &Slot, phase| s.phase == phase && s.queued.len() < depth;
        let found = lanes
            .slots
            .iter()
            .position(|s| room(s, Phase::Collecting))
            .or_else(|| lanes.slots.iter().rposition(|s| s.phase == Phase::Idle))
            .or_else(|| lanes.slots.iter().position(|s| room(s, Phase::Connecting)));
        if let Some(at) = found {
            let slot = &mut lanes.slots[at];
            slot.queued.push(job);
            if slot.phase == Phase::Idle {
                slot.phase = Phase::Collecting;
                slot.wake.notify_one();
            }
            return;
        }
        let id = lanes.next_id;
        lanes.next_id += 1;
        let wake = Arc::new(Notify::new());
        lanes.slots.push(Slot {
            id,
            phase: Phase::Connecting,
            queued: vec![job],
            wake: wake.clone(),
        });
        drop(lanes);
        // Made before the task, so the lane is closed even if the task never runs.
        let guard = CloseOnDrop {
            shared: self.clone(),
            id,
        };
        tokio::spawn(lane::drive(guard, wake));
    }

    /// The driver of lane `id` is ready for work: takes its queued requests (moving it to
    /// `Busy`), or marks it idle (`None`). Requests nobody waits for any more (their fill
    /// was cancelled) are dropped here, never written.
    fn take_batch(&self, id: u64) -> Option<Vec<Job>> {
        let mut lanes = self.lock();
        let slot = lanes.slots.iter_mut().find(|s| s.id == id)?;
        slot.queued.retain(|job| !job.reply.is_closed());
        if slot.queued.is_empty() {
            slot.phase = Phase::Idle;
            return None;
        }
        slot.phase = Phase::Busy;
        Some(std::mem::take(&mut slot.queued))
    }

    /// Whether lane `id` has requests waiting (it is collecting).
    fn has_queued(&self, id: u64) -> bool {
        let lanes = self.lock();
        lanes
            .slots
            .iter()
            .any(|s| s.id == id && !s.queued.is_empty())
    }

    /// Lane `id` finished a batch and can take another: idle, unless enough lanes are
    /// idle already (`false`: the caller closes it).
    fn settle(&self, id: u64) -> bool {
        let mut lanes = self.lock();
        let idle = lanes
            .slots
            .iter()
            .filter(|s| s.phase == Phase::Idle)
            .count();
        let Some(slot) = lanes.slots.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        if idle >= self.settings.max_idle {
            return false;
        }
        slot.phase = Phase::Idle;
        true
    }

    /// The upstream did not keep a connection for pipelined requests: one per lane for a
    /// while.
    fn go_solo(&self) {
        self.lock().solo_until = Some(Instant::now() + SOLO_FOR);
    }

    /// Removes lane `id`; the requests still queued on it go as `leftover` says.
    fn close(self: &Arc<Self>, id: u64, leftover: Leftover) {
        let slot = {
            let mut lanes = self.lock();
            let at = lanes.slots.iter().position(|s| s.id == id);
            at.map(|at| lanes.slots.swap_remove(at))
        };
        let jobs = slot.into_iter().flat_map(|s| s.queued);
        match leftover {
            Leftover::Requeue => self.requeue(jobs),
            Leftover::Fail(failure) => {
                for job in jobs {
                    let _ = job.reply.send(Err(failure.clone()));
                }
            }
        }
    }

    /// Queues requests that were never processed again, each on whatever lane takes it.
    fn requeue(self: &Arc<Self>, jobs: impl IntoIterator<Item = Job>) {
        for job in jobs {
            if !job.reply.is_closed() {
                self.submit(job);
            }
        }
    }
}

/// Not answered because the lane's task ended: goes again.
fn dropped() -> Failure {
    Failure::Unanswered(UpstreamError::Protocol(
        "upstream connection dropped".into(),
    ))
}

/// Ends the lane when dropped, however its task stops (returns, panics, is cancelled or
/// never run with the runtime), so queued requests are never left waiting. Its orderly
/// closes go through [`Shared::close`] first, which leaves this nothing to do.
struct CloseOnDrop {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        // Failed, not queued again: during a shutdown a new lane's task may never run.
        self.shared.close(self.id, Leftover::Fail(dropped()));
    }
}

#[cfg(test)]
mod tests;

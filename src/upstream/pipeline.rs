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
//! no collecting or idle lane open a new one.
//!
//! Only body-less GET and HEAD fetches built from cache keys come here: they are safe to
//! send again. A request the lane could not write, or whose answer had not begun when
//! the connection closed (an upstream closing a keep-alive connection, a `Connection:
//! close` answer in the middle of a batch), goes once more on another lane; at most two
//! attempts, as in [`super::pool`]. A batch must be answered within `upstream.timeout_ms`,
//! or its lane is closed. Idle lanes close after `upstream.pool_idle_timeout_ms`, or at
//! once when the upstream closes them; at most `upstream.pool_max_idle_per_host` stay.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderValue, Method, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

use super::UpstreamResponse;
use super::codec::ResponseReader;
use super::pool::{self, Stream};
use crate::error::UpstreamError;

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
}

/// One lane as the scheduler sees it; the connection itself lives in its driver task.
struct Slot {
    id: u64,
    phase: Phase,
    /// Requests waiting to be written, at most `depth`.
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
enum Failure {
    /// Never written, or written and the connection ended before its answer began: it may
    /// go again on another lane.
    Unanswered(UpstreamError),
    Failed(UpstreamError),
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

    /// Queues `job` on the lane collecting a batch, else a connecting one with room, else
    /// the most recently idle one, else a new lane.
    fn submit(self: &Arc<Self>, job: Job) {
        let depth = self.settings.depth;
        let mut lanes = self.lock();
        let room = |s: &Slot, phase| s.phase == phase && s.queued.len() < depth;
        let found = lanes
            .slots
            .iter()
            .position(|s| room(s, Phase::Collecting))
            .or_else(|| lanes.slots.iter().position(|s| room(s, Phase::Connecting)))
            .or_else(|| lanes.slots.iter().rposition(|s| s.phase == Phase::Idle));
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
        tokio::spawn(drive(self.clone(), id, wake));
    }

    /// The driver of lane `id` is ready for work: takes its queued requests (moving it to
    /// `Busy`), or marks it idle (`None`).
    fn take_batch(&self, id: u64) -> Option<Vec<Job>> {
        let mut lanes = self.lock();
        let slot = lanes.slots.iter_mut().find(|s| s.id == id)?;
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

    /// Removes lane `id`; the requests still queued on it are failed with `why`.
    fn close(&self, id: u64, why: impl Fn() -> Failure) {
        let slot = {
            let mut lanes = self.lock();
            let at = lanes.slots.iter().position(|s| s.id == id);
            at.map(|at| lanes.slots.swap_remove(at))
        };
        for job in slot.into_iter().flat_map(|s| s.queued) {
            let _ = job.reply.send(Err(why()));
        }
    }
}

/// Not answered because the lane closed: goes again.
fn lane_closed() -> Failure {
    Failure::Unanswered(UpstreamError::Protocol(
        "upstream closed the connection".into(),
    ))
}

/// Ends the lane when dropped, however the driver stops (returns, panics, is cancelled
/// with the runtime), so queued requests are never left waiting.
struct CloseOnDrop {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.shared.close(self.id, lane_closed);
    }
}

/// The task of one lane: connects, then writes batches and reads their answers until the
/// connection ends, idles out or is not needed.
async fn drive(shared: Arc<Shared>, id: u64, wake: Arc<Notify>) {
    let _guard = CloseOnDrop {
        shared: shared.clone(),
        id,
    };
    let settings = &shared.settings;
    let connect = pool::open(&shared.connector, &settings.origin);
    let stream = match tokio::time::timeout(settings.connect_timeout, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return shared.close(id, || Failure::Failed(e.clone())),
        Err(_) => {
            let e = UpstreamError::Connect("connect timed out".into());
            return shared.close(id, || Failure::Failed(e.clone()));
        }
    };
    let mut conn = Connection {
        io: TokioIo::new(stream),
        read: BytesMut::with_capacity(READ_CHUNK),
        write: Vec::new(),
        reader: ResponseReader::new(settings.max_body),
    };
    loop {
        if !shared.has_queued(id) {
            let notified = wake.notified();
            if !shared.has_queued(id) && !conn.idle(notified, settings.idle_timeout).await {
                // Out of the scheduler before the socket closes: a request arriving now
                // opens a new lane instead of joining this one.
                return shared.close(id, lane_closed);
            }
        }
        // Every miss of this scheduler pass may still join the batch.
        tokio::task::yield_now().await;
        let Some(batch) = shared.take_batch(id) else {
            continue;
        };
        let mut jobs: VecDeque<Job> = batch.into();
        let deadline = Instant::now() + settings.answer_timeout;
        let outcome = tokio::time::timeout_at(deadline, conn.run(&mut jobs)).await;
        let reusable = match outcome {
            Ok(Ok(reusable)) => reusable,
            Ok(Err(error)) => {
                conn.fail(&mut jobs, &error);
                false
            }
            Err(_) => {
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(Failure::Failed(UpstreamError::Timeout)));
                }
                false
            }
        };
        // A close-delimited or `Connection: close` answer ends the batch early.
        for job in jobs.drain(..) {
            let _ = job.reply.send(Err(lane_closed()));
        }
        if !reusable || !shared.settle(id) {
            return shared.close(id, lane_closed);
        }
    }
}

/// How much more room a read makes in the read buffer.
const READ_CHUNK: usize = 16 * 1024;

struct Connection {
    io: TokioIo<Stream>,
    read: BytesMut,
    write: Vec<u8>,
    reader: ResponseReader,
}

impl Connection {
    /// Waits while the lane is idle: `true` when work arrives, `false` when the idle
    /// timeout passes or the upstream closes the connection (or sends unasked bytes).
    async fn idle(&mut self, work: tokio::sync::futures::Notified<'_>, timeout: Duration) -> bool {
        tokio::select! {
            _ = work => true,
            _ = tokio::time::sleep(timeout) => false,
            _ = self.io.read_buf(&mut self.read) => false,
        }
    }

    /// Writes `jobs` and reads their answers, handing each to its requester (and taking
    /// it off `jobs`); whether the connection may carry another batch. What is left in
    /// `jobs` when it returns was not answered.
    async fn run(&mut self, jobs: &mut VecDeque<Job>) -> Result<bool, AnswerError> {
        self.write.clear();
        for job in jobs.iter() {
            self.write.extend_from_slice(&job.head);
        }
        let mut written = 0;
        let reusable = poll_fn(|cx| {
            while written < self.write.len() {
                match Pin::new(&mut self.io).poll_write(cx, &self.write[written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(closed())),
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(&e))),
                    Poll::Pending => break,
                }
            }
            if written == self.write.len() {
                if let Poll::Ready(Err(e)) = Pin::new(&mut self.io).poll_flush(cx) {
                    return Poll::Ready(Err(io_error(&e)));
                }
            }
            self.answer(cx, jobs)
        })
        .await?;
        // Answers to requests not yet (fully) written mean the stream is out of step.
        Ok(reusable && written == self.write.len())
    }

    /// Fails the jobs a broken connection left unanswered: the one whose answer was
    /// garbage or cut short fails; those not begun may go again.
    fn fail(&self, jobs: &mut VecDeque<Job>, error: &AnswerError) {
        let first_failed = matches!(error, AnswerError::Bad(_)) || !self.reader.at_boundary();
        for (i, job) in jobs.drain(..).enumerate() {
            let failure = if i == 0 && first_failed {
                Failure::Failed(error.upstream())
            } else {
                Failure::Unanswered(error.upstream())
            };
            let _ = job.reply.send(Err(failure));
        }
    }

    /// Reads and hands out answers until every job has one (`Ready(Ok(reusable))`),
    /// the connection fails, or it has to wait for bytes.
    fn answer(
        &mut self,
        cx: &mut Context<'_>,
        jobs: &mut VecDeque<Job>,
    ) -> Poll<Result<bool, AnswerError>> {
        loop {
            while let Some(job) = jobs.front() {
                match self.reader.read(&mut self.read, &job.method) {
                    Ok(Some(parsed)) => {
                        let job = jobs.pop_front().expect("checked");
                        let _ = job.reply.send(Ok(parsed.response));
                        if !parsed.reusable {
                            return Poll::Ready(Ok(false));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Poll::Ready(Err(AnswerError::Bad(e.to_string()))),
                }
            }
            if jobs.is_empty() {
                // An answer nobody asked for means the stream is out of step.
                return Poll::Ready(Ok(self.read.is_empty()));
            }
            self.read.reserve(READ_CHUNK);
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(match self.reader.read_eof(&mut self.read) {
                        Ok(Some(parsed)) => {
                            let job = jobs.pop_front().expect("checked");
                            let _ = job.reply.send(Ok(parsed.response));
                            Ok(false)
                        }
                        Ok(None) => Err(closed()),
                        Err(e) => Err(AnswerError::Bad(e.to_string())),
                    });
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(&e))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Why a batch stopped being answered.
enum AnswerError {
    /// The connection closed or failed: an answer not begun may be asked again.
    Gone(String),
    /// The upstream sent something unreadable.
    Bad(String),
}

impl AnswerError {
    fn upstream(&self) -> UpstreamError {
        match self {
            AnswerError::Gone(e) | AnswerError::Bad(e) => UpstreamError::Protocol(e.clone()),
        }
    }
}

fn closed() -> AnswerError {
    AnswerError::Gone("upstream closed the connection".into())
}

fn io_error(e: &std::io::Error) -> AnswerError {
    AnswerError::Gone(format!("upstream connection failed: {e}"))
}

// The stream type is only read and written through tokio's traits here.
const _: fn() = || {
    fn io<T: AsyncRead + AsyncWrite + Unpin>() {}
    io::<TokioIo<Stream>>();
};

#[cfg(test)]
mod tests;

//! One lane's task: connects, then writes batches and reads their answers, in order,
//! until the connection ends, idles out or is not needed.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::Instant;

use super::{CloseOnDrop, Failure, Job, Leftover};
use crate::error::UpstreamError;
use crate::upstream::codec::{CodecError, ResponseReader};
use crate::upstream::pool::{self, Stream};

/// How much more room a read makes in the read buffer.
const READ_CHUNK: usize = 16 * 1024;

pub(super) async fn drive(guard: CloseOnDrop, wake: Arc<Notify>) {
    let (shared, id) = (guard.shared.clone(), guard.id);
    let settings = &shared.settings;
    let connect = pool::open(&shared.connector, &settings.origin);
    let stream = match tokio::time::timeout(settings.connect_timeout, connect).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return shared.close(id, Leftover::Fail(Failure::Failed(e))),
        Err(_) => {
            let e = UpstreamError::Connect("connect timed out".into());
            return shared.close(id, Leftover::Fail(Failure::Failed(e)));
        }
    };
    let mut conn = Connection {
        io: TokioIo::new(stream),
        read: BytesMut::with_capacity(READ_CHUNK),
        write: Vec::new(),
        ends: Vec::new(),
        reader: ResponseReader::new(settings.max_body),
        answers: 0,
    };
    loop {
        if !shared.has_queued(id) {
            let notified = wake.notified();
            if !shared.has_queued(id) && !conn.idle(notified, settings.idle_timeout).await {
                // Out of the scheduler before the socket closes: a request arriving now
                // opens a new lane instead of joining this one.
                return shared.close(id, Leftover::Requeue);
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
        let stale = matches!(outcome, Ok(Err(AnswerError::Stale)));
        let reusable = match outcome {
            Ok(Ok(reusable)) => reusable,
            Ok(Err(AnswerError::Stale)) => false, // nothing was written: all go again
            Ok(Err(AnswerError::Abandoned)) => {
                jobs.clear(); // nobody waits for them: nothing to fail or send again
                false
            }
            Ok(Err(error)) => {
                if conn.answers <= 1 && jobs.len() > 1 {
                    shared.go_solo(); // e.g. reset with the pipelined requests unread
                }
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
        if !jobs.is_empty() {
            // Never written, or written after an answer that closed the connection (the
            // upstream does not process those); first on a lane: it will not pipeline.
            if conn.answers <= 1 && !stale {
                shared.go_solo();
            }
            shared.close(id, Leftover::Requeue);
            shared.requeue(jobs);
            return;
        }
        if !reusable || !shared.settle(id) {
            return shared.close(id, Leftover::Requeue);
        }
    }
}

struct Connection {
    io: TokioIo<Stream>,
    read: BytesMut,
    write: Vec<u8>,
    /// Where each request of the batch ends in `write`: no answer is taken for a
    /// request before it is written.
    ends: Vec<usize>,
    reader: ResponseReader,
    /// Answers read on this connection so far.
    answers: u64,
}

/// Why a batch stopped being answered.
enum AnswerError {
    /// Before anything was written, the upstream had closed the connection or sent
    /// bytes nobody asked for.
    Stale,
    /// The connection closed or failed: an answer not begun may be asked again.
    Gone(String),
    /// The upstream sent something unreadable.
    Bad(UpstreamError),
    /// Every request still unanswered was cancelled: nobody wants their answers.
    Abandoned,
}

impl AnswerError {
    fn upstream(&self) -> UpstreamError {
        match self {
            AnswerError::Stale => UpstreamError::Protocol("upstream closed the connection".into()),
            AnswerError::Gone(e) => UpstreamError::Protocol(e.clone()),
            AnswerError::Bad(e) => e.clone(),
            AnswerError::Abandoned => UpstreamError::Protocol("fills cancelled".into()),
        }
    }
}

impl From<CodecError> for AnswerError {
    fn from(e: CodecError) -> AnswerError {
        AnswerError::Bad(match e {
            CodecError::TooLarge => UpstreamError::TooLarge,
            e => UpstreamError::Protocol(e.to_string()),
        })
    }
}

fn closed() -> AnswerError {
    AnswerError::Gone("upstream closed the connection".into())
}

fn io_error(e: &std::io::Error) -> AnswerError {
    AnswerError::Gone(format!("upstream connection failed: {e}"))
}

impl Connection {
    /// Waits while the lane is idle: `true` when work arrives, `false` when the idle
    /// timeout passes or the upstream closes the connection (or sends unasked bytes).
    async fn idle(&mut self, work: Notified<'_>, timeout: Duration) -> bool {
        tokio::select! {
            biased;
            _ = self.io.read_buf(&mut self.read) => false,
            _ = work => true,
            _ = tokio::time::sleep(timeout) => false,
        }
    }

    /// Writes `jobs` and reads their answers, handing each to its requester (and taking
    /// it off `jobs`); whether the connection may carry another batch. What is left in
    /// `jobs` when it returns `Ok` was written after an answer that closed the connection.
    async fn run(&mut self, jobs: &mut VecDeque<Job>) -> Result<bool, AnswerError> {
        self.write.clear();
        self.ends.clear();
        for job in jobs.iter() {
            self.write.extend_from_slice(&job.head);
            self.ends.push(self.write.len());
        }
        let mut written = 0;
        let mut checked = false;
        poll_fn(|cx| {
            if !checked {
                checked = true;
                // A close (or anything else) that arrived while the lane idled: write
                // nothing on this connection.
                let read =
                    tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read);
                if read.is_ready() {
                    return Poll::Ready(Err(AnswerError::Stale));
                }
            }
            while written < self.write.len() {
                match Pin::new(&mut self.io).poll_write(cx, &self.write[written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(closed())),
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(&e))),
                    Poll::Pending => break,
                }
            }
            if written == self.write.len()
                && let Poll::Ready(Err(e)) = Pin::new(&mut self.io).poll_flush(cx)
            {
                return Poll::Ready(Err(io_error(&e)));
            }
            self.answer(cx, jobs, written)
        })
        .await
    }

    /// Fails the jobs a broken connection left unanswered: the one whose answer was
    /// unreadable or cut short fails; those not begun may go once more.
    fn fail(&self, jobs: &mut VecDeque<Job>, error: &AnswerError) {
        let begun = !self.reader.at_boundary(&self.read);
        let first_failed = matches!(error, AnswerError::Bad(_)) || begun;
        for (i, job) in jobs.drain(..).enumerate() {
            let failure = if i == 0 && first_failed {
                Failure::Failed(error.upstream())
            } else {
                Failure::Unanswered(error.upstream())
            };
            let _ = job.reply.send(Err(failure));
        }
    }

    /// Reads and hands out answers until every job has one (`Ready(Ok(reusable))`), one
    /// closes the connection (`Ready(Ok(false))`), the connection fails, or it has to
    /// wait for bytes. `written`: how much of the batch is on the wire.
    fn answer(
        &mut self,
        cx: &mut Context<'_>,
        jobs: &mut VecDeque<Job>,
        written: usize,
    ) -> Poll<Result<bool, AnswerError>> {
        loop {
            while let Some(job) = jobs.front() {
                if self.read.is_empty() {
                    break;
                }
                let index = self.ends.len() - jobs.len();
                if self.ends[index] > written {
                    // An answer to a request not on the wire yet: the stream is out of step.
                    return Poll::Ready(Err(AnswerError::Bad(UpstreamError::Protocol(
                        "upstream answered a request before it was sent".into(),
                    ))));
                }
                let Some(parsed) = self.reader.read(&mut self.read, &job.method)? else {
                    break;
                };
                let job = jobs.pop_front().expect("checked");
                self.answers += 1;
                let _ = job.reply.send(Ok(parsed.response));
                if !parsed.reusable {
                    return Poll::Ready(Ok(false));
                }
            }
            if jobs.is_empty() {
                // Bytes nobody asked for mean the stream is out of step.
                return Poll::Ready(Ok(self.read.is_empty()));
            }
            self.read.reserve(READ_CHUNK);
            match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.read) {
                Poll::Ready(Ok(0)) => {
                    let Some(parsed) = self.reader.read_eof(&mut self.read)? else {
                        return Poll::Ready(Err(closed()));
                    };
                    let job = jobs.pop_front().expect("checked");
                    self.answers += 1;
                    let _ = job.reply.send(Ok(parsed.response));
                    return Poll::Ready(Ok(false));
                }
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(io_error(&e))),
                // Before waiting for bytes: if every request left was cancelled, stop;
                // else be woken when the first one still wanted is cancelled (one
                // registration, on the front request, while it is wanted).
                Poll::Pending if jobs.iter_mut().all(|j| j.reply.poll_closed(cx).is_ready()) => {
                    return Poll::Ready(Err(AnswerError::Abandoned));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

// The stream is only read and written through tokio's traits here.
const _: fn() = || {
    fn io<T: tokio::io::AsyncRead + AsyncWrite + Unpin>() {}
    io::<TokioIo<Stream>>();
};

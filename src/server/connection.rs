//! One connection, cleartext or TLS alike: hyper's HTTP/1.1-or-HTTP/2 server over the
//! socket (behind [`super::oversized::Oversized`]), the keep-alive idle watchdog, and the
//! drain when the connection is asked to close.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;

use super::oversized;
use crate::gateway::Gateway;
use crate::simulation::Unanswered;

/// Activity on one connection, for the keep-alive idle timeout. Counters only: the hit
/// path reads no clock for it.
#[derive(Default)]
struct Activity {
    in_flight: AtomicU32,
    /// Requests started on this connection so far.
    started: AtomicU64,
}

/// The idle watchdog of one connection. It wakes every `limits.idle` (before the first
/// request: once `limits.first` has passed since the connection was accepted) and closes
/// the connection when no request is in flight and none started since its last wake, so an
/// idle keep-alive connection goes after between one and two idle timeouts.
struct Watchdog {
    /// When the connection was accepted: before its TLS handshake, which spends the same
    /// first-request time.
    opened: Instant,
    seen_at_last_wake: u64,
}

impl Watchdog {
    /// How long to sleep before the first check: until `limits.first` has passed since the
    /// connection was accepted (a TLS handshake spent part of it already), or one idle
    /// timeout if that is sooner. Zero when the time is up.
    fn first_sleep(&self, limits: IdleLimits) -> Duration {
        limits
            .first
            .saturating_sub(self.opened.elapsed())
            .min(limits.idle)
    }

    /// How long to sleep before the next check, or `None` to close now.
    fn next(&mut self, activity: &Activity, limits: IdleLimits) -> Option<Duration> {
        let started = activity.started.load(Ordering::Relaxed);
        if started == 0 {
            return limits
                .first
                .checked_sub(self.opened.elapsed())
                .filter(|d| !d.is_zero());
        }
        let busy = activity.in_flight.load(Ordering::Relaxed) > 0;
        let quiet = !busy && started == self.seen_at_last_wake;
        self.seen_at_last_wake = started;
        (!quiet).then_some(limits.idle)
    }
}

/// How long a connection may sit without a request in flight.
#[derive(Clone, Copy)]
pub(super) struct IdleLimits {
    /// Before the first request: `server.header_read_timeout_ms`, so a client that connects
    /// and sends nothing at all is cut off like one that sends half a request head.
    pub(super) first: Duration,
    /// Between requests: `server.keepalive_idle_timeout_ms`.
    pub(super) idle: Duration,
    /// Once a connection is asked to close (idle, or shutting down): how long it may take
    /// to finish what it is writing, `server.shutdown_timeout_ms`. A client that stops
    /// reading its answer would otherwise hold the connection and its slot for ever.
    pub(super) drain: Duration,
}

/// What [`oversized::Oversized`] needs: hyper's HTTP/1 head buffer, and how long to read
/// and drop a client's bytes after answering its oversized head.
#[derive(Clone, Copy)]
pub(super) struct OverflowLimits {
    pub(super) buffer: usize,
    pub(super) linger: Duration,
}

/// Counts a request in flight for its lifetime.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one connection, cleartext or TLS, accepted at `opened` (before any TLS
/// handshake): the same limits and timeouts on both, each from the accept.
pub(super) async fn serve_connection<IO>(
    stream: IO,
    opened: Instant,
    gateway: Gateway,
    builder: &auto::Builder<TokioExecutor>,
    mut stop: watch::Receiver<bool>,
    limits: IdleLimits,
    overflow: OverflowLimits,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let mut watchdog = Watchdog {
        opened,
        seen_at_last_wake: 0,
    };
    let service = {
        let activity = activity.clone();
        service_fn(move |request| {
            let gateway = gateway.clone();
            activity.in_flight.fetch_add(1, Ordering::Relaxed);
            activity.started.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight(activity.clone());
            async move {
                let response = gateway.handle(request).await;
                drop(guard);
                // A request `[simulation]` leaves unanswered: hyper closes an HTTP/1
                // connection whose service fails, and resets an HTTP/2 stream
                // (INTERNAL_ERROR), writing nothing.
                match response.extensions().get::<Unanswered>() {
                    Some(unanswered) => Err(*unanswered),
                    None => Ok(response),
                }
            }
        })
    };
    let io = oversized::Oversized::new(stream, overflow.buffer, overflow.linger);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let idle = tokio::time::sleep(watchdog.first_sleep(limits));
    tokio::pin!(idle);
    // Armed when the connection starts draining.
    let deadline = tokio::time::sleep(limits.drain);
    tokio::pin!(deadline);
    let mut draining = *stop.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
        deadline.as_mut().reset(Instant::now() + limits.drain);
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection error");
                }
                return;
            }
            changed = stop.changed(), if !draining => {
                if changed.is_err() || *stop.borrow() {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                    deadline.as_mut().reset(Instant::now() + limits.drain);
                }
            }
            () = &mut idle, if !draining => match watchdog.next(&activity, limits) {
                Some(next) => idle.as_mut().reset(Instant::now() + next),
                None => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                    deadline.as_mut().reset(Instant::now() + limits.drain);
                }
            },
            // Still writing (the client stopped reading) past the drain time: drop it.
            () = &mut deadline, if draining => {
                tracing::debug!("connection still busy past server.shutdown_timeout_ms; closed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first check falls at `limits.first` after the accept, not after whatever ran
    /// between the accept and the connection's start (a TLS handshake).
    #[test]
    fn the_first_check_counts_from_the_accept() {
        let limits = IdleLimits {
            first: Duration::from_secs(10),
            idle: Duration::from_secs(3600),
            drain: Duration::from_secs(1),
        };
        let handshake = Duration::from_secs(8);
        let watchdog = Watchdog {
            opened: Instant::now() - handshake,
            seen_at_last_wake: 0,
        };
        let sleep = watchdog.first_sleep(limits);
        assert!(sleep <= limits.first - handshake, "{sleep:?}");
        // Past it: no sleep at all, and the check closes the connection.
        let mut late = Watchdog {
            opened: Instant::now() - limits.first,
            seen_at_last_wake: 0,
        };
        assert_eq!(late.first_sleep(limits), Duration::ZERO);
        assert_eq!(late.next(&Activity::default(), limits), None);
        // A shorter idle timeout still wakes first.
        let short = IdleLimits {
            idle: Duration::from_secs(1),
            ..limits
        };
        assert!(watchdog.first_sleep(short) <= short.idle);
    }
}

//! The public listener: accepts connections (HTTP/1.1 and cleartext HTTP/2 on the same
//! port), enforces the connection limits and timeouts, and drains on shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::gateway::Gateway;

/// Why [`run`] could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Serves `listener` with a gateway built from `config` until `shutdown` resolves, then
/// stops accepting, lets in-flight requests finish within `server.shutdown_timeout_ms`,
/// and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let gateway = Gateway::new(config)?;
    serve(listener, gateway, shutdown).await;
    Ok(())
}

/// Like [`run`], with a gateway built by the caller.
pub async fn serve(listener: TcpListener, gateway: Gateway, shutdown: impl Future<Output = ()>) {
    let server = &gateway.config().server;
    let connections = Arc::new(Semaphore::new(server.max_connections));
    let idle_timeout = server.keepalive_idle_timeout();
    let shutdown_timeout = server.shutdown_timeout();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Slowloris guard: a client that dribbles its request head is cut off.
        .header_read_timeout(server.header_read_timeout())
        // hyper answers 431 by itself past this; our own check (JSON 431) runs first
        // for anything up to it.
        .max_buf_size((server.max_header_bytes + server.max_query_bytes + 8192).max(8192));
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);

    let (stop_tx, stop_rx) = watch::channel(false);
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);

    loop {
        // Wait for a connection slot first: past `max_connections`, clients queue in the
        // kernel's backlog instead of being accepted and starved.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let builder = builder.clone();
        let stop = stop_rx.clone();
        tracker.spawn(async move {
            serve_connection(stream, gateway, &builder, stop, idle_timeout).await;
            tracing::trace!(%peer, "connection closed");
            drop(permit);
        });
    }

    tracing::info!("shutting down: no longer accepting connections");
    drop(listener);
    let _ = stop_tx.send(true);
    tracker.close();
    if tokio::time::timeout(shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = tracker.len(),
            "shutdown timeout reached; closing remaining connections"
        );
    } else {
        tracing::info!("all connections drained");
    }
}

/// Activity on one connection, for the keep-alive idle timeout.
struct Activity {
    in_flight: AtomicU32,
    /// Milliseconds since `epoch` of the last request start or end.
    last_ms: AtomicU64,
    epoch: Instant,
}

impl Activity {
    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time left before the connection counts as idle, or `None` if it is idle now.
    fn idle_in(&self, timeout: Duration) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Some(timeout);
        }
        let since = self
            .epoch
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)));
        timeout.checked_sub(since).filter(|d| !d.is_zero())
    }
}

/// Counts a request in flight for its lifetime.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_connection(
    stream: TcpStream,
    gateway: Gateway,
    builder: &auto::Builder<TokioExecutor>,
    mut stop: watch::Receiver<bool>,
    idle_timeout: Duration,
) {
    let activity = Arc::new(Activity {
        in_flight: AtomicU32::new(0),
        last_ms: AtomicU64::new(0),
        epoch: Instant::now(),
    });
    let service = {
        let activity = activity.clone();
        service_fn(move |request| {
            let gateway = gateway.clone();
            activity.in_flight.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight(activity.clone());
            async move {
                let response = gateway.handle(request).await;
                drop(guard);
                Ok::<_, Infallible>(response)
            }
        })
    };
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(idle);
    let mut draining = *stop.borrow();
    if draining {
        conn.as_mut().graceful_shutdown();
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
                }
            }
            () = &mut idle, if !draining => match activity.idle_in(idle_timeout) {
                Some(left) => idle.as_mut().reset(Instant::now() + left),
                None => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            },
        }
    }
}

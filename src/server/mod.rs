//! The public listeners: accepts connections (HTTP/1.1 and cleartext HTTP/2 on the same
//! port, and on the HTTPS listener the same after a TLS handshake, see [`tls`]), enforces
//! the connection limits and timeouts, and drains on shutdown. Both listeners share one
//! accept loop, one `server.max_connections` budget and one connection path: a TLS
//! connection is served by the same code once its handshake is done.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_util::task::TaskTracker;

mod connection;
mod oversized;
pub mod tls;

pub use tls::{CertStore, TlsListener};

use connection::{IdleLimits, OverflowLimits, serve_connection};

use crate::admin::{AdminServer, Readiness};
use crate::config::Config;
use crate::gateway::{Gateway, PurgeScope};
use crate::shared_cache::RemotePurge;

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
    serve_with_admin(listener, None, gateway, shutdown).await;
}

/// Like [`serve`], with the admin listener (bound by the caller, like the public one).
/// Readiness turns false the moment `shutdown` resolves; the admin listener keeps
/// answering while the public one drains, and stops after it.
pub async fn serve_with_admin(
    listener: TcpListener,
    admin: Option<AdminServer>,
    gateway: Gateway,
    shutdown: impl Future<Output = ()>,
) {
    let listeners = Listeners {
        plain: Some(listener),
        tls: None,
    };
    serve_listeners(listeners, admin, gateway, shutdown).await;
}

/// The public listeners, each bound by the caller: cleartext (`server.listen`), HTTPS
/// (`tls.listen`), or both. At least one should be given; with none, nothing is accepted
/// until `shutdown`.
#[derive(Default)]
pub struct Listeners {
    pub plain: Option<TcpListener>,
    pub tls: Option<TlsListener>,
}

/// Like [`serve_with_admin`], on the cleartext listener, the HTTPS one, or both: the same
/// gateway, the same connection limits (one `server.max_connections` budget for both) and
/// timeouts, the same drain. While it serves, the HTTPS listener's certificate files are
/// polled every `tls.reload_interval_ms`.
pub async fn serve_listeners(
    listeners: Listeners,
    admin: Option<AdminServer>,
    gateway: Gateway,
    shutdown: impl Future<Output = ()>,
) {
    let readiness = admin
        .as_ref()
        .map_or_else(Readiness::default, AdminServer::readiness);
    let (admin_stop, admin_stopped) = watch::channel(false);
    let admin = async {
        if let Some(admin) = admin {
            admin.run(gateway.clone(), admin_stopped).await;
        }
    };
    let public = async {
        serve_public(listeners, gateway.clone(), shutdown, &readiness).await;
        let _ = admin_stop.send(true);
    };
    tokio::join!(public, admin);
}

async fn serve_public(
    listeners: Listeners,
    gateway: Gateway,
    shutdown: impl Future<Output = ()>,
    readiness: &Readiness,
) {
    let server = &gateway.config().server;
    let connections = Arc::new(Semaphore::new(server.max_connections));
    let limits = IdleLimits {
        first: server.header_read_timeout(),
        idle: server.keepalive_idle_timeout(),
        drain: server.shutdown_timeout(),
    };
    let shutdown_timeout = server.shutdown_timeout();
    // The most of a request head a connection holds: the header and target limits plus
    // room for the request line's method and version and each header's `: ` and CRLF.
    // Anything up to it reaches the gateway's own checks (JSON 414/431).
    let head_buffer = (server.max_header_bytes + server.max_query_bytes + 8192).max(8192);
    let overflow = OverflowLimits {
        buffer: head_buffer,
        linger: server.header_read_timeout(),
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Slowloris guard: a client that dribbles its request head is cut off.
        .header_read_timeout(server.header_read_timeout())
        // A longer head is answered by hyper itself, and [`oversized`] puts evalgate's
        // JSON answer in place of hyper's bare one.
        .max_buf_size(head_buffer);
    // Note: hyper's HTTP/1 header timer also runs while a keep-alive connection waits for
    // its next request, so an idle HTTP/1.1 connection is closed after the shorter of the
    // header and idle timeouts; HTTP/2 connections follow the idle timeout alone.
    builder
        .http2()
        .timer(TokioTimer::new())
        // The same bound as an HTTP/1 head (h2 counts each field's name and value plus
        // 32 bytes): anything up to it reaches the gateway's own checks (JSON 414/431).
        // Past it the h2 library answers the stream itself: a bare 431 and a reset
        // (REFUSED_STREAM); the connection's other streams go on.
        .max_header_list_size(u32::try_from(head_buffer).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);

    let (stop_tx, stop_rx) = watch::channel(false);
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);

    if let Some(engine) = gateway.upstream().as_embedded() {
        let interval = Duration::from_millis(gateway.config().embedded.reload_interval_ms);
        let g = gateway.clone();
        let watcher =
            crate::embedded::watch_flags(engine.clone(), interval, stop_rx.clone(), move |keys| {
                g.flags_reloaded(keys)
            });
        tracker.spawn(watcher);
    }

    let config = gateway.config();
    if config.cache.flags_bytes() < config.upstream.max_response_bytes as u64 {
        tracing::warn!(
            flags_segment_bytes = config.cache.flags_bytes(),
            max_response_bytes = config.upstream.max_response_bytes,
            "the cache's flags segment (cache.flags_percent of cache.max_bytes) is smaller than upstream.max_response_bytes: a flag configuration that does not fit in it is served but never stored"
        );
    }
    tracker.spawn(crate::cache::run_sweeper(
        gateway.cache().clone(),
        Duration::from_secs(config.cache.sweep_interval_s),
        stop_rx.clone(),
    ));

    if let Some(shared) = gateway.shared_cache() {
        let g = gateway.clone();
        let on_purge = move |purge: RemotePurge| match purge {
            RemotePurge::All => g.purge_local(&PurgeScope::All),
            RemotePurge::Deployment(d) => g.purge_local(&PurgeScope::Deployment(d)),
        };
        tracker.spawn(shared.clone().run(on_purge, stop_rx.clone()));
    }

    let invalidation = &gateway.config().invalidation;
    if !invalidation.flags_url.is_empty() {
        let mut flags_config = gateway.config().upstream.clone();
        flags_config.url = invalidation.flags_url.clone();
        match crate::upstream::Upstream::http(&flags_config) {
            Ok(flags) => {
                let interval = Duration::from_secs(invalidation.poll_interval_s);
                tracker.spawn(crate::invalidation::poll_flag_changes(
                    gateway.clone(),
                    flags,
                    interval,
                    stop_rx.clone(),
                ));
            }
            Err(e) => tracing::error!(error = %e, "flag-change polling disabled"),
        }
    }

    let Listeners { plain, tls } = listeners;
    let acceptor = tls.as_ref().map(|tls| tls.acceptor.clone());
    if let Some(tls) = &tls {
        let interval = Duration::from_millis(gateway.config().tls.reload_interval_ms);
        let metrics = gateway.metrics().tls().clone();
        tracker.spawn(tls::watch(
            tls.store.clone(),
            interval,
            metrics,
            stop_rx.clone(),
        ));
    }

    readiness.set_listening();
    loop {
        // Wait for a connection slot first: past `max_connections`, clients queue in the
        // kernel's backlog instead of being accepted and starved.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        let (accepted, secure) = tokio::select! {
            accepted = accept(plain.as_ref()) => (accepted, false),
            accepted = accept(tls.as_ref().map(|tls| &tls.listener)) => (accepted, true),
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // The first request's time runs from here, through a TLS handshake too.
        let opened = tokio::time::Instant::now();
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let builder = builder.clone();
        let stop = stop_rx.clone();
        let acceptor = acceptor.clone().filter(|_| secure);
        tracker.spawn(async move {
            match acceptor {
                None => {
                    serve_connection(stream, opened, gateway, &builder, stop, limits, overflow)
                        .await;
                }
                Some(acceptor) => {
                    let metrics = gateway.metrics().tls().clone();
                    // The handshake counts against the first-request time, like a head:
                    // both end by `opened + limits.first`.
                    let budget = (opened, limits.first);
                    let secured =
                        tls::handshake(&acceptor, stream, peer, budget, &metrics, stop.clone());
                    if let Some(stream) = secured.await {
                        let (builder, stop) = (&builder, stop);
                        serve_connection(stream, opened, gateway, builder, stop, limits, overflow)
                            .await;
                    }
                }
            }
            tracing::trace!(%peer, "connection closed");
            drop(permit);
        });
    }

    readiness.start_draining();
    tracing::info!("shutting down: no longer accepting connections");
    drop(plain);
    drop(tls);
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

/// Accepts on `listener`; never resolves when there is none.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

//! The admin listener (`admin.listen`, never the public port): `/healthz`, `/readyz`,
//! `/metrics`, `/admin/stats`, `/admin/try` and the status page at `/`.
//!
//! Routing is one `match` on method and path in `route`; a new endpoint is one arm.
//! With `admin.token` set, everything but `/healthz` and `/readyz` needs
//! `Authorization: Bearer <token>` (`auth`). The listener keeps answering while the
//! public listener drains (so `/readyz` can say 503), and stops after it.

mod auth;
mod health;
mod page;
mod purge;
mod stats;
mod try_it;

pub use health::Readiness;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

use crate::gateway::Gateway;
use crate::response::Body;

/// Largest admin request body (`/admin/try` form).
const MAX_BODY_BYTES: usize = 64 * 1024;
/// A client must send its request head within this (slowloris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// After the public listener has drained, admin requests in flight get this long.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// A bound admin listener and the readiness it reports. Bind it before serving, like the
/// public one, so the address is known (tests bind port 0).
pub struct AdminServer {
    listener: TcpListener,
    readiness: Readiness,
}

impl AdminServer {
    pub fn new(listener: TcpListener) -> AdminServer {
        AdminServer {
            listener,
            readiness: Readiness::default(),
        }
    }

    /// The readiness `/readyz` reports; [`crate::serve_listeners`] flips it.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `stop` turns true, then lets requests in flight finish (briefly).
    pub(crate) async fn run(self, gateway: Gateway, mut stop: watch::Receiver<bool>) {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let tracker = TaskTracker::new();
        let readiness = self.readiness;
        loop {
            let (stream, _) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = stopped(&mut stop) => break,
            };
            let gateway = gateway.clone();
            let readiness = readiness.clone();
            let builder = builder.clone();
            let mut stop = stop.clone();
            tracker.spawn(async move {
                let service = service_fn(move |request| {
                    let gateway = gateway.clone();
                    let readiness = readiness.clone();
                    async move { Ok::<_, Infallible>(route(&gateway, &readiness, request).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => return,
                    () = stopped(&mut stop) => conn.as_mut().graceful_shutdown(),
                }
                let _ = conn.await;
            });
        }
        drop(self.listener);
        tracker.close();
        if tokio::time::timeout(STOP_TIMEOUT, tracker.wait())
            .await
            .is_err()
        {
            tracing::debug!("admin connections closed at shutdown");
        }
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Every admin endpoint. The open ones first, then the token check, then the rest: a new
/// endpoint is one arm of the second `match`, e.g.
/// `(&Method::POST, "/admin/purge") => purge::handle(gateway, &parts).await,`
/// (listing its path in [`KNOWN_PATHS`] as well makes other methods a 405, not a 404).
async fn route(
    gateway: &Gateway,
    readiness: &Readiness,
    request: Request<Incoming>,
) -> Response<Body> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => return health::healthz(gateway),
        (&Method::GET, "/readyz") => return health::readyz(gateway, readiness),
        _ => {}
    }
    if !auth::authorized(request.headers(), &gateway.live().admin_token()) {
        return auth::unauthorized();
    }
    let (parts, body) = request.into_parts();
    // The public listener's body deadline applies here too.
    let deadline = gateway.config().server.body_read_timeout();
    let body =
        match tokio::time::timeout(deadline, Limited::new(body, MAX_BODY_BYTES).collect()).await {
            Ok(Ok(body)) => body.to_bytes(),
            Ok(Err(_)) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
            Err(_) => {
                return error(
                    StatusCode::REQUEST_TIMEOUT,
                    "request body not received within server.body_read_timeout_ms",
                );
            }
        };
    match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/metrics") => stats::metrics(gateway).await,
        (&Method::GET, "/admin/stats") => stats::stats(gateway).await,
        (&Method::POST, "/admin/try") => try_it::handle(gateway, &body).await,
        (&Method::POST, "/admin/purge") => purge::handle(gateway, &parts).await,
        (&Method::GET, path) if page::is_asset(path) => page::asset(path),
        (_, path) if KNOWN_PATHS.contains(&path) || page::is_asset(path) => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "no such admin endpoint"),
    }
}

/// Paths answered above, for 405 on the wrong method.
const KNOWN_PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/metrics",
    "/admin/stats",
    "/admin/try",
    "/admin/purge",
];

/// A JSON response.
fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("JSON serializes");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An admin error: `{"error": "…"}`.
fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": message }))
}

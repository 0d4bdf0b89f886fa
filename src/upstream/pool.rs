//! The upstream's connection pool: HTTP/1.1 keep-alive connections, each driven by the
//! task whose request it carries.
//!
//! hyper-util's pooled client runs every connection in a task of its own, hands each
//! request to it through channels and returns the connection to the pool from yet another
//! task, so one upstream exchange wakes three tasks. Here the task that sends a request
//! polls the connection itself until the whole answer is read, then parks it: an exchange
//! costs the wake-ups of its own socket only. Nobody polls a parked connection; a close by
//! the upstream is noticed when it is next checked out. A request the connection could not
//! write (closed meanwhile) goes once more on another connection, whatever its method; a
//! GET or HEAD that meets a close after it was written, before any answer, also goes once
//! more. Never more than two attempts. Parked connections idle
//! longer than `upstream.pool_idle_timeout_ms` are closed (at checkout, and by a reaper
//! task every idle timeout), at most `upstream.pool_max_idle_per_host` are kept.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::{Arc, Mutex, Once, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Parts as UriParts;
use http::{HeaderValue, Method, Request, Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tower_service::Service;

use super::UpstreamResponse;
use crate::error::UpstreamError;

/// A connection to the upstream, plain or TLS.
pub(super) type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// The pool of connections to one upstream origin. Cheap to clone.
#[derive(Clone)]
pub(super) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    connector: HttpsConnector<HttpConnector>,
    /// Scheme and authority of the upstream: what is connected to.
    origin: Uri,
    /// The `Host` header every request carries.
    host: HeaderValue,
    /// Parked connections, the longest idle first.
    idle: Mutex<Vec<Parked>>,
    max_idle: usize,
    idle_timeout: Duration,
    /// Starts the reaper the first time a connection is parked (inside the runtime).
    reaper: Once,
}

struct Parked {
    conn: Box<Conn>,
    since: Instant,
}

/// One connection: the handle requests are sent through and the state machine that does
/// its I/O, polled by whoever holds the connection. Always boxed: with its buffers and TLS
/// state it is large, and it moves between the pool and the requests.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    /// `None` once it finished (closed or failed). Dropped at once: hyper cancels a
    /// request still queued in it only then, so it cannot be left waiting.
    driver: Option<http1::Connection<Stream, Full<Bytes>>>,
}

/// How one exchange on one connection failed.
enum Failure {
    /// The connection went away before the request was written: hyper hands it back, and
    /// it can go on another connection whatever its method.
    Unsent(Box<Request<Full<Bytes>>>, UpstreamError),
    /// Closed or reset after the request was written, before any answer (typically a
    /// parked connection the upstream was closing): only GET and HEAD may go again.
    Closed(UpstreamError),
    Failed(UpstreamError),
}

impl Pool {
    pub(super) fn new(
        connector: HttpsConnector<HttpConnector>,
        origin: &Uri,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Pool {
        let origin = connect_target(origin);
        Pool {
            inner: Arc::new(Inner {
                connector,
                host: host_header(&origin),
                origin,
                idle: Mutex::new(Vec::new()),
                max_idle,
                idle_timeout,
                reaper: Once::new(),
            }),
        }
    }

    /// Sends `request` (its URI's path and query; the origin is the pool's) on a parked
    /// connection or a new one, reads the whole answer within `max_body` bytes, and parks
    /// the connection again if it can carry another request. A request the connection was
    /// closed under goes once more on another one: any request never written, a GET or
    /// HEAD also when it was written but not answered.
    pub(super) async fn exchange(
        &self,
        request: Request<Bytes>,
        max_body: usize,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let (mut parts, body) = request.into_parts();
        parts.uri = origin_form(&parts.uri);
        parts.headers.insert(header::HOST, self.inner.host.clone());
        // hyper does not hand back a request it wrote: keep a copy for the one retry.
        let mut copy =
            matches!(parts.method, Method::GET | Method::HEAD).then(|| copy_request(&parts, &body));
        let mut request = Request::from_parts(parts, Full::new(body));
        let mut resent = false;
        loop {
            let mut conn = self.connection().await?;
            let again = match conn.exchange(request, max_body).await {
                Ok(response) => {
                    self.park(conn).await;
                    return Ok(response);
                }
                Err(Failure::Unsent(unsent, _)) if !resent => *unsent,
                Err(Failure::Closed(_)) if !resent && copy.is_some() => {
                    copy.take().expect("checked")
                }
                Err(Failure::Unsent(_, e) | Failure::Closed(e) | Failure::Failed(e)) => {
                    return Err(e);
                }
            };
            resent = true;
            request = again;
        }
    }

    /// A parked connection still open, else a new one.
    async fn connection(&self) -> Result<Box<Conn>, UpstreamError> {
        while let Some(mut conn) = self.checkout() {
            if poll_fn(|cx| Poll::Ready(conn.reusable(cx))).await {
                return Ok(conn);
            }
        }
        // Boxed: connecting (TCP, TLS, handshake) is rare and its future large.
        Box::pin(self.connect()).await
    }

    /// The most recently parked connection; closes those idle too long on the way.
    fn checkout(&self) -> Option<Box<Conn>> {
        let now = Instant::now();
        let (conn, expired) = {
            let mut idle = self.inner.lock_idle();
            let expired = self.inner.expired(&mut idle, now);
            (idle.pop().map(|p| p.conn), expired)
        };
        drop(expired); // closes the sockets outside the lock
        conn
    }

    async fn connect(&self) -> Result<Box<Conn>, UpstreamError> {
        let stream = open(&self.inner.connector, &self.inner.origin).await?;
        let (sender, driver) = http1::handshake(stream)
            .await
            .map_err(|e| UpstreamError::Connect(error_chain(&e)))?;
        Ok(Box::new(Conn {
            sender,
            driver: Some(driver),
        }))
    }

    /// Keeps `conn` for the next request if it can carry one and there is room.
    async fn park(&self, mut conn: Box<Conn>) {
        if !poll_fn(|cx| Poll::Ready(conn.reusable(cx))).await {
            return;
        }
        let now = Instant::now();
        let (refused, expired) = {
            let mut idle = self.inner.lock_idle();
            let expired = self.inner.expired(&mut idle, now);
            if idle.len() < self.inner.max_idle {
                idle.push(Parked { conn, since: now });
                (None, expired)
            } else {
                (Some(conn), expired)
            }
        };
        drop((refused, expired));
        self.inner.reaper.call_once(|| spawn_reaper(&self.inner));
    }
}

impl Inner {
    fn lock_idle(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the connections parked at least the idle timeout before `now` out of `idle`
    /// (they are at its front), for the caller to drop once the lock is released.
    fn expired(&self, idle: &mut Vec<Parked>, now: Instant) -> Vec<Parked> {
        let n = idle
            .iter()
            .take_while(|p| now.saturating_duration_since(p.since) >= self.idle_timeout)
            .count();
        idle.drain(..n).collect()
    }
}

/// Closes connections idle past the timeout while nothing checks any out; ends with the
/// pool.
fn spawn_reaper(inner: &Arc<Inner>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let pool: Weak<Inner> = Arc::downgrade(inner);
    let every = inner.idle_timeout;
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
        loop {
            ticks.tick().await;
            let Some(inner) = pool.upgrade() else { return };
            let expired = inner.expired(&mut inner.lock_idle(), Instant::now());
            drop(expired);
        }
    });
}

impl Conn {
    /// Sends one request and reads its whole answer, driving the connection meanwhile.
    async fn exchange(
        &mut self,
        request: Request<Full<Bytes>>,
        max_body: usize,
    ) -> Result<UpstreamResponse, Failure> {
        let sent = self.sender.try_send_request(request);
        let response = self.driving(sent).await.map_err(|mut e| {
            let unsent = e.take_message();
            let e = e.into_error();
            let error = UpstreamError::Protocol(error_chain(&e));
            match unsent {
                Some(request) => Failure::Unsent(Box::new(request), error),
                None if closed_before_answer(&e) => Failure::Closed(error),
                None => Failure::Failed(error),
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = self
            .driving(Limited::new(body, max_body).collect())
            .await
            .map_err(|e| {
                Failure::Failed(if e.is::<http_body_util::LengthLimitError>() {
                    UpstreamError::TooLarge
                } else {
                    UpstreamError::Protocol(error_chain(&*e))
                })
            })?
            .to_bytes();
        Ok(UpstreamResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// Awaits `work` while polling the connection, whose reads and writes it waits on.
    async fn driving<F: Future>(&mut self, work: F) -> F::Output {
        let mut work = pin!(work);
        poll_fn(|cx| {
            self.drive(cx);
            work.as_mut().poll(cx)
        })
        .await
    }

    fn drive(&mut self, cx: &mut Context<'_>) {
        if let Some(driver) = &mut self.driver
            && driver.poll_without_shutdown(cx).is_ready()
        {
            self.driver = None;
        }
    }

    /// Whether the connection is open and idle, ready for another request. Polls it once,
    /// which reads a close the upstream sent meanwhile.
    fn reusable(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx);
        self.driver.is_some() && self.sender.is_ready()
    }
}

/// The scheme and authority of `origin` (what is connected to), with path `/`.
pub(super) fn connect_target(origin: &Uri) -> Uri {
    let mut parts = UriParts::default();
    parts.scheme = origin.scheme().cloned();
    parts.authority = origin.authority().cloned();
    parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    Uri::from_parts(parts).unwrap_or_else(|_| origin.clone())
}

/// Opens a connection (TCP, and TLS for `https`) to `origin`.
pub(super) async fn open(
    connector: &HttpsConnector<HttpConnector>,
    origin: &Uri,
) -> Result<Stream, UpstreamError> {
    let connect_failed =
        |e: Box<dyn std::error::Error + Send + Sync>| UpstreamError::Connect(error_chain(&*e));
    let mut connector = connector.clone();
    poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(connect_failed)?;
    connector.call(origin.clone()).await.map_err(connect_failed)
}

/// The `Host` header for an origin: its host, and its port unless it is the scheme's
/// default (as a client writes it); never user info.
pub(super) fn host_header(origin: &Uri) -> HeaderValue {
    let Some(authority) = origin.authority() else {
        return HeaderValue::from_static("localhost");
    };
    let default_port = match origin.scheme_str() {
        Some("https") => 443,
        _ => 80,
    };
    let host = match authority.port_u16() {
        Some(port) if port != default_port => format!("{}:{port}", authority.host()),
        _ => authority.host().to_string(),
    };
    HeaderValue::from_str(&host).unwrap_or_else(|_| HeaderValue::from_static("localhost"))
}

/// The origin form (`/path?query`) of a request URI.
fn origin_form(uri: &Uri) -> Uri {
    let mut parts = UriParts::default();
    parts.path_and_query = Some(
        uri.path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

/// Whether a client error means the connection went away before the response began (a
/// pooled keep-alive connection the upstream had closed), as opposed to a bad answer.
fn closed_before_answer(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled() || h.is_closed())
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) {
                return true;
            }
        }
        source = e.source();
    }
    false
}

/// A copy of a request head and its (cheaply cloned) body, for one retry.
fn copy_request(parts: &http::request::Parts, body: &Bytes) -> Request<Full<Bytes>> {
    let mut copy = Request::new(Full::new(body.clone()));
    *copy.method_mut() = parts.method.clone();
    *copy.uri_mut() = parts.uri.clone();
    *copy.version_mut() = parts.version;
    *copy.headers_mut() = parts.headers.clone();
    copy
}

/// An error with its sources, as one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let more = e.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests;

//! The upstream: an HTTP(S) evaluation server reached through pooled keep-alive
//! connections (connect and whole-exchange timeouts, a cap on response size), or the
//! embedded engine answering in-process. [`pool`] keeps the connections.

mod pool;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::config::{ConfigError, UpstreamConfig, upstream_base};
use crate::embedded::Embedded;
use crate::error::UpstreamError;

/// A fully read upstream response.
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Where misses and bypasses are answered: an HTTP(S) server, or the embedded engine.
/// Cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    base: String,
    origin: Origin,
    timeout: Duration,
    max_response_bytes: usize,
}

#[derive(Clone)]
enum Origin {
    Http(pool::Pool),
    Embedded(Embedded),
}

/// The `upstream.url` that selects the embedded engine.
pub const EMBEDDED: &str = "embedded";

/// The base URL requests to the embedded engine carry; never resolved.
const EMBEDDED_BASE: &str = "http://embedded.evalgate.invalid";

impl Upstream {
    /// An HTTP(S) upstream at `config.url`.
    pub fn http(config: &UpstreamConfig) -> Result<Upstream, ConfigError> {
        let base = upstream_base(&config.url)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(config.connect_timeout()));
        let https = HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let origin: Uri = base.parse().map_err(|e| ConfigError::Invalid {
            key: "upstream.url",
            problem: format!("`{base}` is not a URL ({e})"),
        })?;
        let pool = pool::Pool::new(
            https,
            &origin,
            config.pool_max_idle_per_host,
            config.pool_idle_timeout(),
        );
        Ok(Upstream {
            base,
            origin: Origin::Http(pool),
            timeout: config.timeout(),
            max_response_bytes: config.max_response_bytes,
        })
    }

    /// The embedded engine, answering in-process.
    pub fn embedded(config: &UpstreamConfig, engine: Embedded) -> Upstream {
        Upstream {
            base: EMBEDDED_BASE.into(),
            origin: Origin::Embedded(engine),
            timeout: config.timeout(),
            max_response_bytes: config.max_response_bytes,
        }
    }

    /// The embedded engine, when that is the upstream.
    pub fn as_embedded(&self) -> Option<&Embedded> {
        match &self.origin {
            Origin::Embedded(e) => Some(e),
            Origin::Http(_) => None,
        }
    }

    /// The base URL requests are sent to, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and reads the whole response, all within `upstream.timeout_ms`.
    pub async fn send(&self, request: Request<Bytes>) -> Result<UpstreamResponse, UpstreamError> {
        match &self.origin {
            Origin::Embedded(engine) => Ok(engine.answer(&request)),
            Origin::Http(pool) => {
                let attempts = async {
                    // A pooled connection the upstream closed in the meantime fails the
                    // request before any answer; a GET is retried once on another one.
                    let retry = matches!(*request.method(), Method::GET | Method::HEAD)
                        .then(|| copy_request(&request));
                    let max = self.max_response_bytes;
                    match pool.exchange(request, max).await {
                        Err(Attempt::Closed(_)) if retry.is_some() => pool
                            .exchange(retry.expect("checked"), max)
                            .await
                            .map_err(Attempt::into_error),
                        other => other.map_err(Attempt::into_error),
                    }
                };
                tokio::time::timeout(self.timeout, attempts)
                    .await
                    .map_err(|_| UpstreamError::Timeout)?
            }
        }
    }
}

/// How one attempt at an upstream exchange failed.
enum Attempt {
    /// The connection was closed or reset before any answer: safe to retry an idempotent
    /// request on another connection.
    Closed(UpstreamError),
    Failed(UpstreamError),
}

impl Attempt {
    fn into_error(self) -> UpstreamError {
        match self {
            Attempt::Closed(e) | Attempt::Failed(e) => e,
        }
    }
}

/// Whether a client error means the connection went away before the response began (a
/// pooled keep-alive connection the upstream had closed), as opposed to a bad answer.
fn closed_before_answer(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return true;
            }
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

/// A copy of a request with a cheaply cloned body, for one retry.
fn copy_request(request: &Request<Bytes>) -> Request<Bytes> {
    let mut copy = Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

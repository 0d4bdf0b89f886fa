//! The upstream: an HTTP(S) evaluation server reached through pooled keep-alive
//! connections (connect and whole-exchange timeouts, a cap on response size), or the
//! embedded engine answering in-process. [`pool`] keeps the connections.

mod pool;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, Uri};
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
                let exchange = pool.exchange(request, self.max_response_bytes);
                tokio::time::timeout(self.timeout, exchange)
                    .await
                    .map_err(|_| UpstreamError::Timeout)?
            }
        }
    }
}

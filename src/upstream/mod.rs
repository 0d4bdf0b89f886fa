//! The upstream: an HTTP(S) evaluation server reached through pooled keep-alive
//! connections (connect and whole-exchange timeouts, a cap on response size), or the
//! embedded engine answering in-process. [`pool`] keeps the connections; cache fills
//! may instead share pipelined ones ([`pipeline`], `upstream.pipeline_depth` > 1), read
//! by [`codec`].

// Public only so the fuzz target `fuzz/fuzz_targets/pipeline_codec.rs` can drive the
// response reader on arbitrary byte streams; not part of evalgate's API.
#[doc(hidden)]
pub mod codec;
mod pipeline;
mod pool;

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnectorBuilder;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::config::{ConfigError, UpstreamConfig, base_url};
use crate::embedded::Embedded;
use crate::error::UpstreamError;
use crate::key::CacheKey;

/// A fully read upstream response.
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A cache fill ready for a pipelined connection: the request head, from the key alone.
#[derive(Debug, Clone)]
pub struct Pipelined(Bytes);

/// Where misses and bypasses are answered: an HTTP(S) server, or the embedded engine.
/// Cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    base: String,
    /// The path of `upstream.url` without its trailing slash ("" for none): what request
    /// paths go under.
    prefix: String,
    origin: Origin,
    timeout: Duration,
    max_response_bytes: usize,
    /// Cache fills ask for gzip (`compression.upstream_gzip`, HTTP(S) upstreams only).
    accept_gzip: bool,
}

/// What cache fills send with `compression.upstream_gzip`: a constant, so the upstream
/// request is still built from the key alone.
const ACCEPT_GZIP: &str = "gzip";

#[derive(Clone)]
enum Origin {
    Http {
        pool: pool::Pool,
        /// For cache fills, when `upstream.pipeline_depth` > 1.
        pipeline: Option<pipeline::Pipeline>,
    },
    Embedded(Embedded),
}

/// The `upstream.url` that selects the embedded engine.
pub const EMBEDDED: &str = "embedded";

/// The base URL requests to the embedded engine carry; never resolved.
const EMBEDDED_BASE: &str = "http://embedded.evalgate.invalid";

impl Upstream {
    /// An HTTP(S) upstream at `config.url`.
    pub fn http(config: &UpstreamConfig) -> Result<Upstream, ConfigError> {
        let base = base_url("upstream.url", &config.url)?;
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
        let pipeline = (config.pipeline_depth > 1).then(|| {
            pipeline::Pipeline::new(
                https.clone(),
                pipeline::Settings {
                    origin: pool::connect_target(&origin),
                    depth: config.pipeline_depth,
                    max_body: config.max_response_bytes,
                    max_idle: config.pool_max_idle_per_host,
                    idle_timeout: config.pool_idle_timeout(),
                    connect_timeout: config.connect_timeout(),
                    answer_timeout: config.timeout(),
                },
            )
        });
        let pool = pool::Pool::new(
            https,
            &origin,
            config.pool_max_idle_per_host,
            config.pool_idle_timeout(),
        );
        Ok(Upstream {
            prefix: origin.path().trim_end_matches('/').to_string(),
            base,
            origin: Origin::Http { pool, pipeline },
            timeout: config.timeout(),
            max_response_bytes: config.max_response_bytes,
            accept_gzip: false,
        })
    }

    /// Cache fills ask an HTTP(S) upstream for gzip when `on` (the embedded engine
    /// answers identity whatever is asked).
    pub fn with_accept_gzip(mut self, on: bool) -> Upstream {
        self.accept_gzip = on && self.as_embedded().is_none();
        self
    }

    /// `upstream.timeout_ms`: the bound on one whole exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The upstream's limit on a response body, which also bounds a decoded one.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }

    /// The request a miss of `key` sends: [`CacheKey::upstream_request`], asking for gzip
    /// when cache fills do.
    pub fn fill_request(&self, key: &CacheKey) -> Result<Request<Bytes>, http::Error> {
        let mut request = key.upstream_request(&self.base)?;
        if self.accept_gzip {
            request.headers_mut().insert(
                http::header::ACCEPT_ENCODING,
                http::HeaderValue::from_static(ACCEPT_GZIP),
            );
        }
        Ok(request)
    }

    /// The embedded engine, answering in-process.
    pub fn embedded(config: &UpstreamConfig, engine: Embedded) -> Upstream {
        Upstream {
            base: EMBEDDED_BASE.into(),
            prefix: String::new(),
            origin: Origin::Embedded(engine),
            timeout: config.timeout(),
            max_response_bytes: config.max_response_bytes,
            accept_gzip: false,
        }
    }

    /// The embedded engine, when that is the upstream.
    pub fn as_embedded(&self) -> Option<&Embedded> {
        match &self.origin {
            Origin::Embedded(e) => Some(e),
            Origin::Http { .. } => None,
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
            Origin::Http { pool, .. } => {
                let exchange = pool.exchange(request, self.max_response_bytes);
                self.within_timeout(exchange).await
            }
        }
    }

    /// The pipelined request a miss of `key` sends, when `upstream.pipeline_depth` > 1
    /// and the key is a GET: its head, written from the key alone. `None`: send
    /// [`CacheKey::upstream_request`] instead.
    pub fn pipelined(&self, key: &CacheKey) -> Option<Pipelined> {
        match &self.origin {
            Origin::Http {
                pipeline: Some(pipeline),
                ..
            } => {
                let mut head = key.upstream_head(&self.prefix, pipeline.host())?;
                if self.accept_gzip {
                    // Before the blank line that ends the head.
                    head.truncate(head.len() - 2);
                    head.extend_from_slice(b"accept-encoding: ");
                    head.extend_from_slice(ACCEPT_GZIP.as_bytes());
                    head.extend_from_slice(b"\r\n\r\n");
                }
                Some(Pipelined(Bytes::from(head)))
            }
            _ => None,
        }
    }

    /// Sends a [`Upstream::pipelined`] request on a pipelined connection and reads the
    /// whole response, all within `upstream.timeout_ms`.
    pub async fn send_pipelined(
        &self,
        request: Pipelined,
    ) -> Result<UpstreamResponse, UpstreamError> {
        match &self.origin {
            Origin::Http {
                pipeline: Some(pipeline),
                ..
            } => {
                // Boxed like the pool's connect: it would make every request's future larger.
                let exchange = Box::pin(pipeline.exchange(request.0, Method::GET));
                self.within_timeout(exchange).await
            }
            _ => Err(UpstreamError::Protocol("no pipelined connections".into())),
        }
    }

    /// Pipelined connections open now (0 without pipelining).
    pub fn pipelined_connections(&self) -> usize {
        match &self.origin {
            Origin::Http {
                pipeline: Some(pipeline),
                ..
            } => pipeline.lanes(),
            _ => 0,
        }
    }

    async fn within_timeout(
        &self,
        exchange: impl Future<Output = Result<UpstreamResponse, UpstreamError>>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }
}

//! The upstream client: pooled keep-alive connections over HTTP or HTTPS, with connect
//! and whole-exchange timeouts and a cap on response size.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::config::{ConfigError, UpstreamConfig, upstream_base};
use crate::error::UpstreamError;

/// A fully read upstream response.
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// The upstream: its base URL and a connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Upstream {
    base: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    max_response_bytes: usize,
}

impl Upstream {
    pub fn new(config: &UpstreamConfig) -> Result<Upstream, ConfigError> {
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
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.pool_idle_timeout())
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .build(https);
        Ok(Upstream {
            base,
            client,
            timeout: config.timeout(),
            max_response_bytes: config.max_response_bytes,
        })
    }

    /// The base URL requests are sent to, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request and reads the whole response, all within `upstream.timeout_ms`.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        tokio::time::timeout(self.timeout, self.exchange(request))
            .await
            .map_err(|_| UpstreamError::Timeout)?
    }

    async fn exchange(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let response: Response<_> = self.client.request(request).await.map_err(|e| {
            if e.is_connect() {
                UpstreamError::Connect(e.to_string())
            } else {
                UpstreamError::Protocol(e.to_string())
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = Limited::new(body, self.max_response_bytes)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    UpstreamError::TooLarge
                } else {
                    UpstreamError::Protocol(e.to_string())
                }
            })?
            .to_bytes();
        Ok(UpstreamResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

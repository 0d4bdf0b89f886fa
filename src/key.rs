//! The cache key, which is also the canonical upstream request.
//!
//! A [`CacheKey`] holds everything the forwarded request is built from and nothing else,
//! so nothing outside the key can reach the upstream and poison an entry: two requests
//! share an entry exactly when evalgate would send the upstream the same request.

use std::fmt;
use std::sync::Arc;

use http::{HeaderValue, Method, Request, header};

/// Which endpoint family a key belongs to; families never share entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteFamily {
    /// `GET /v1/vardata`.
    V1Vardata,
}

impl RouteFamily {
    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteFamily::V1Vardata => "v1_vardata",
        }
    }
}

/// A canonical request: cheap to clone (one `Arc`), hashed and compared by value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(Arc<KeyParts>);

#[derive(PartialEq, Eq, Hash)]
struct KeyParts {
    route: RouteFamily,
    /// The deployment key, in full: it is forwarded, and two deployments never share.
    deployment: Box<str>,
    /// `X-Amp-Exp-Track`, forwarded as is.
    track: Option<Box<str>>,
    /// Canonical path and query, forwarded as is.
    path_and_query: Box<str>,
}

/// The `User-Agent` evalgate sends upstream.
pub const USER_AGENT: &str = concat!("evalgate/", env!("CARGO_PKG_VERSION"));

impl CacheKey {
    pub fn new(
        route: RouteFamily,
        deployment: &str,
        track: Option<&str>,
        path_and_query: String,
    ) -> CacheKey {
        CacheKey(Arc::new(KeyParts {
            route,
            deployment: deployment.into(),
            track: track.map(Into::into),
            path_and_query: path_and_query.into_boxed_str(),
        }))
    }

    pub fn route(&self) -> RouteFamily {
        self.0.route
    }

    pub fn deployment(&self) -> &str {
        &self.0.deployment
    }

    pub fn track(&self) -> Option<&str> {
        self.0.track.as_deref()
    }

    pub fn path_and_query(&self) -> &str {
        &self.0.path_and_query
    }

    /// Bytes this key holds, for the cache's weigher.
    pub fn weight(&self) -> usize {
        self.0.deployment.len()
            + self.0.track.as_ref().map_or(0, |t| t.len())
            + self.0.path_and_query.len()
    }

    /// The request sent upstream on a miss, built from the key alone.
    pub fn upstream_request(&self, base: &str) -> Result<Request<()>, http::Error> {
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(format!("{base}{}", self.path_and_query()))
            .header(header::ACCEPT, HeaderValue::from_static("application/json"))
            .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
            .header(
                header::AUTHORIZATION,
                HeaderValue::try_from(format!("Api-Key {}", self.deployment()))?,
            );
        if let Some(track) = self.track() {
            builder = builder.header("x-amp-exp-track", HeaderValue::try_from(track)?);
        }
        builder.body(())
    }
}

/// Debug output masks the deployment key, so keys can be logged.
impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheKey")
            .field("route", &self.route())
            .field("deployment", &crate::mask::Masked(self.deployment()))
            .field("track", &self.track())
            .field("path_and_query", &self.path_and_query())
            .finish()
    }
}

//! Building the responses evalgate sends: cached and relayed answers with `X-Cache` and
//! `Age`, and its own JSON errors; [`vary`] adds to `Vary` without overwriting it;
//! [`client_cache`] is the `Cache-Control` clients get on the cacheable routes.

pub mod client_cache;
pub mod vary;

pub use client_cache::ClientCacheControl;
pub use vary::{append_vary, remove_vary};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::error::GatewayError;

/// Whether and how the cache answered, sent as `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// Answered from a fresh entry.
    Hit,
    /// Looked up, not found: answered by the upstream (alone or coalesced).
    Miss,
    /// Answered from an entry past its freshness: while it is refreshed in the background,
    /// or because the upstream failed.
    Stale,
    /// Not looked up: forwarded as is, nothing stored.
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Bypass => "BYPASS",
        }
    }

    fn header_value(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

pub type Body = Full<Bytes>;

/// Which tier answered when it was not this instance's memory, sent as `X-Cache-Tier`
/// when the shared cache tier is configured (an L1 answer carries no header, so that the
/// L1 hit path is the same with or without the tier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The shared tier (Redis): another instance's fill.
    L2,
    /// The upstream (a miss), or an error evalgate made.
    Upstream,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::L2 => "l2",
            Tier::Upstream => "upstream",
        }
    }
}

/// `X-Cache-Tier`.
pub static X_CACHE_TIER: HeaderName = HeaderName::from_static("x-cache-tier");

/// `response` with `X-Cache-Tier: <tier>`.
pub fn with_tier(mut response: Response<Body>, tier: Tier) -> Response<Body> {
    response.headers_mut().insert(
        X_CACHE_TIER.clone(),
        HeaderValue::from_static(tier.as_str()),
    );
    response
}

/// `X-Cache`, on every response of a cacheable route and of a passthrough.
pub static X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// A response with evalgate's cache headers. `age` is `None` where the upstream's own
/// `Age` is kept.
pub fn with_cache_headers(
    status: StatusCode,
    content_type: Option<&HeaderValue>,
    body: Bytes,
    cache: CacheStatus,
    age: u64,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Some(ct) = content_type {
        headers.insert(header::CONTENT_TYPE, ct.clone());
    }
    headers.insert(X_CACHE.clone(), cache.header_value());
    headers.insert(header::AGE, HeaderValue::from(age));
    response
}

/// A relayed response: the upstream's end-to-end headers, its status and body.
pub fn relayed(
    status: StatusCode,
    upstream_headers: &HeaderMap,
    body: Bytes,
    cache: CacheStatus,
) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    copy_end_to_end(upstream_headers, headers);
    headers.remove(header::CONTENT_LENGTH);
    headers.insert(X_CACHE.clone(), cache.header_value());
    if !headers.contains_key(header::AGE) {
        headers.insert(header::AGE, HeaderValue::from_static("0"));
    }
    response
}

/// The body of evalgate's own error: `{"error": "…"}`.
pub fn error_json(err: &GatewayError) -> Bytes {
    let body = serde_json::to_vec(&serde_json::json!({ "error": err.public_message() }))
        .expect("json serializes");
    Bytes::from(body)
}

/// evalgate's own error: `{"error": "…"}` with the status of its class.
pub fn error(err: &GatewayError, cache: Option<CacheStatus>) -> Response<Body> {
    let mut response = Response::new(Full::new(error_json(err)));
    *response.status_mut() = err.status();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(cache) = cache {
        headers.insert(X_CACHE.clone(), cache.header_value());
        headers.insert(header::AGE, HeaderValue::from_static("0"));
    }
    match err {
        GatewayError::Overloaded => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        GatewayError::OverBudget { retry_after_s } => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
        }
        GatewayError::MethodNotAllowed => {
            headers.insert(header::ALLOW, HeaderValue::from_static(FORWARDED_METHODS));
        }
        _ => {}
    }
    response
}

/// The `Allow` of a 405: the standard methods evalgate serves or forwards (any method
/// but `CONNECT` and `TRACE` is; RFC 9110 §15.5.6 asks a 405 to list them).
pub const FORWARDED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Headers that describe one connection, never forwarded in either direction
/// (RFC 9110 §7.6.1), plus any the `Connection` header names.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Copies `from` into `to` without hop-by-hop headers (and `Upgrade`).
pub fn copy_end_to_end(from: &HeaderMap, to: &mut HeaderMap) {
    let named_by_connection: Vec<&str> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    for (name, value) in from {
        let hop = HOP_BY_HOP.contains(name)
            || name == header::UPGRADE
            || named_by_connection
                .iter()
                .any(|n| name.as_str().eq_ignore_ascii_case(n));
        if !hop {
            to.append(name.clone(), value.clone());
        }
    }
}

/// Removes every field whose name matches `pred` and returns how many field lines there
/// were. Allocates only when there is one to remove.
pub fn remove_matching(headers: &mut HeaderMap, pred: impl Fn(&HeaderName) -> bool) -> u64 {
    if !headers.keys().any(&pred) {
        return 0;
    }
    let names: Vec<HeaderName> = headers.keys().filter(|n| pred(n)).cloned().collect();
    let mut removed = 0;
    for name in names {
        removed += headers.get_all(&name).iter().count() as u64;
        headers.remove(&name);
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remove_matching_removes_every_line_of_the_matching_fields_only() {
        let mut headers = HeaderMap::new();
        headers.append("x_one", HeaderValue::from_static("1"));
        headers.append("x_one", HeaderValue::from_static("2"));
        headers.append("x_two", HeaderValue::from_static("3"));
        headers.append("x-kept", HeaderValue::from_static("4"));
        assert_eq!(
            remove_matching(&mut headers, |n| n.as_str().contains('_')),
            3
        );
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["x-kept"], "4");
        assert_eq!(
            remove_matching(&mut headers, |n| n.as_str().contains('_')),
            0
        );
        assert_eq!(headers.len(), 1);
    }
}

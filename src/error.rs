//! Errors that evalgate answers itself, classified by who is at fault, and the one place
//! they become HTTP responses (`{"error": "…"}` JSON).

use http::StatusCode;

/// A failure talking to the upstream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The upstream could not be reached (refused, unresolvable, connect timeout, TLS).
    #[error("upstream unreachable: {0}")]
    Connect(String),
    /// The upstream did not answer within `upstream.timeout_ms`.
    #[error("upstream timed out")]
    Timeout,
    /// The upstream answered something that is not a usable HTTP response.
    #[error("upstream answered garbage: {0}")]
    Protocol(String),
    /// The upstream's body exceeded `upstream.max_response_bytes`.
    #[error("upstream response too large")]
    TooLarge,
    /// A 200 whose body is not the JSON document the route returns (never cached).
    #[error("upstream answered 200 with a body that is not the expected JSON")]
    NotJson,
}

/// Everything evalgate may answer with an error of its own.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// `upstream.max_inflight` requests are already in flight.
    #[error("too many upstream requests in flight")]
    Overloaded,
    /// The deployment key's upstream budget (`upstream.budget_rps`) is spent and the cache
    /// has no stale entry to answer with; a token is back in `retry_after_s` (≥ 1).
    #[error("upstream budget exhausted (retry in {retry_after_s} s)")]
    OverBudget { retry_after_s: u64 },
    /// The request target exceeds `server.max_query_bytes`.
    #[error("request target too long")]
    UriTooLong,
    /// The decoded `context` exceeds `server.max_context_bytes`.
    #[error("context parameter too long")]
    ContextTooLong,
    /// Request headers exceed `server.max_header_bytes`.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// The request body exceeds `server.max_body_bytes`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The request body could not be read from the client.
    #[error("request body could not be read")]
    BodyRead,
    /// The request body did not arrive within `server.body_read_timeout_ms`.
    #[error("request body timed out")]
    BodyTimeout,
    /// A request evalgate could not turn into an upstream request.
    #[error("request cannot be forwarded")]
    Unforwardable,
    /// `CONNECT` or `TRACE`: methods that mean nothing to an evaluation API, never forwarded
    /// (a tunnel through evalgate, or an echo of the client's headers).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A bug: a task evalgate started failed.
    #[error("internal error")]
    Internal,
}

impl GatewayError {
    /// The status for this error: client faults 4xx, upstream faults 502/504, load 503, the
    /// upstream budget 429.
    pub fn status(&self) -> StatusCode {
        match self {
            GatewayError::Upstream(UpstreamError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            GatewayError::Upstream(_) => StatusCode::BAD_GATEWAY,
            GatewayError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            GatewayError::OverBudget { .. } => StatusCode::TOO_MANY_REQUESTS,
            GatewayError::UriTooLong | GatewayError::ContextTooLong => StatusCode::URI_TOO_LONG,
            GatewayError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            GatewayError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            GatewayError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            GatewayError::BodyRead | GatewayError::Unforwardable => StatusCode::BAD_REQUEST,
            GatewayError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            GatewayError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message clients see: what went wrong, never internal detail.
    pub fn public_message(&self) -> &'static str {
        match self {
            GatewayError::Upstream(UpstreamError::Connect(_)) => "upstream unreachable",
            GatewayError::Upstream(UpstreamError::Timeout) => "upstream timed out",
            GatewayError::Upstream(UpstreamError::Protocol(_)) => "upstream answered garbage",
            GatewayError::Upstream(UpstreamError::TooLarge) => "upstream response too large",
            GatewayError::Upstream(UpstreamError::NotJson) => {
                "upstream answered 200 without the expected JSON"
            }
            GatewayError::Overloaded => "too many upstream requests in flight, retry later",
            GatewayError::OverBudget { .. } => {
                "upstream budget for this deployment key exhausted, retry later"
            }
            GatewayError::UriTooLong => "request target exceeds server.max_query_bytes",
            GatewayError::ContextTooLong => "context exceeds server.max_context_bytes",
            GatewayError::HeadersTooLarge => "request headers exceed server.max_header_bytes",
            GatewayError::BodyTooLarge => "request body exceeds server.max_body_bytes",
            GatewayError::BodyRead => "request body could not be read",
            GatewayError::BodyTimeout => {
                "request body not received within server.body_read_timeout_ms"
            }
            GatewayError::Unforwardable => "request cannot be forwarded upstream",
            GatewayError::MethodNotAllowed => "CONNECT and TRACE are not served",
            GatewayError::Internal => "internal error",
        }
    }
}

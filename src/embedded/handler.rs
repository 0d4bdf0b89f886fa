//! The embedded server's routes: one request in, one response out, no I/O.
//!
//! | path | user from | flag keys from | shape |
//! |---|---|---|---|
//! | `GET\|POST /v1/vardata` | `context` (GET) or body (POST), then `user_id`/`device_id` from the query written over it | `flag_key`, `flag_keys` | v1 |
//! | `GET /sdk/v2/vardata`, `GET /sdk/vardata` | base64 `X-Amp-Exp-User` | base64 `X-Amp-Exp-Flag-Keys`, else `flag_key`/`flag_keys` | v2 / v1 |
//! | `POST /sdk/v2/vardata`, `POST /sdk/vardata` | JSON body | as above | v2 / v1 |
//! | `GET /sdk/v2/flags`, `GET /v1/flags` | – | `flag_keys`, `flag_key` | flags array |

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use serde_json::{Map, Value};

use super::Embedded;
use crate::eval::{self, Shape};
use crate::normalize::{deployment_key, form};
use crate::upstream::UpstreamResponse;

/// Why a vardata request gets no 200.
enum Problem {
    /// The request is malformed: 400.
    BadRequest(&'static str),
    /// The flags cannot be evaluated (a dependency cycle, an invalid regex): the service's
    /// own fault, 500.
    Evaluation(eval::EvalError),
}

impl From<&'static str> for Problem {
    fn from(message: &'static str) -> Problem {
        Problem::BadRequest(message)
    }
}

/// Where a vardata route reads its user from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum UserSource {
    /// `/v1/vardata`: the `context` parameter (GET) or the body (POST).
    Context,
    /// The SDK routes: the `X-Amp-Exp-User` header (GET) or the body (POST).
    Sdk,
}

impl Embedded {
    /// Answers one request as the evaluation service would.
    pub fn answer(&self, request: &Request<Bytes>) -> UpstreamResponse {
        self.inner
            .answered
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let route = match (request.method(), request.uri().path()) {
            (&Method::GET | &Method::POST, "/v1/vardata") => Some((UserSource::Context, Shape::V1)),
            (&Method::GET | &Method::POST, "/sdk/v2/vardata") => Some((UserSource::Sdk, Shape::V2)),
            (&Method::GET | &Method::POST, "/sdk/vardata") => Some((UserSource::Sdk, Shape::V1)),
            (&Method::GET, "/sdk/v2/flags" | "/v1/flags") => None,
            (
                _,
                "/v1/vardata" | "/sdk/v2/vardata" | "/sdk/vardata" | "/sdk/v2/flags" | "/v1/flags",
            ) => {
                return error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            }
            _ => return error(StatusCode::NOT_FOUND, "not found"),
        };
        let Some(flags) = deployment_key(request.headers()).and_then(|k| self.flags_for(k)) else {
            return error(StatusCode::UNAUTHORIZED, "invalid deployment key");
        };
        let Ok(params) = form::pairs(request.uri().query().unwrap_or(""))
            .map(|p| p.map(|(n, v)| (n.into_owned(), v.into_owned())))
            .collect::<Result<Vec<_>, _>>()
        else {
            return error(StatusCode::BAD_REQUEST, "query is not valid UTF-8");
        };
        match route {
            None => {
                let keys = query_flag_keys(&params);
                let keys = (!keys.is_empty()).then_some(keys.as_slice());
                json(flags.to_json(keys))
            }
            Some((source, shape)) => match vardata(&flags, request, &params, source, shape) {
                Ok(body) => json(body),
                Err(Problem::BadRequest(message)) => error(StatusCode::BAD_REQUEST, message),
                Err(Problem::Evaluation(e)) => {
                    tracing::error!(error = %e, "embedded evaluation failed");
                    error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        &format!("evaluation failed: {e}"),
                    )
                }
            },
        }
    }
}

/// Evaluates a vardata request into its response body.
fn vardata(
    flags: &eval::Flags,
    request: &Request<Bytes>,
    params: &[(String, String)],
    source: UserSource,
    shape: Shape,
) -> Result<Vec<u8>, Problem> {
    let post = request.method() == Method::POST;
    let mut user = match (source, post) {
        (_, true) if request.body().iter().all(u8::is_ascii_whitespace) => Map::new(),
        (_, true) => object(request.body()).ok_or("body is not a JSON object")?,
        (UserSource::Context, false) => match param(params, "context") {
            None => Map::new(),
            Some(c) => object(c.as_bytes()).ok_or("context is not a JSON object")?,
        },
        (UserSource::Sdk, false) => match header_text(request.headers(), "x-amp-exp-user") {
            None => Map::new(),
            Some(text) => {
                let bytes = crate::b64::decode(text).ok_or("X-Amp-Exp-User is not base64")?;
                object(&bytes).ok_or("X-Amp-Exp-User is not a JSON object")?
            }
        },
    };
    if source == UserSource::Context {
        // As Amplitude's evaluation-proxy does: the query's ids win over the context's.
        for name in ["user_id", "device_id"] {
            if let Some(v) = param(params, name).filter(|v| !v.is_empty()) {
                user.insert(name.into(), Value::String(v.into()));
            }
        }
    }
    let keys = match header_text(request.headers(), "x-amp-exp-flag-keys") {
        Some(text) if source == UserSource::Sdk => {
            let bytes = crate::b64::decode(text).ok_or("X-Amp-Exp-Flag-Keys is not base64")?;
            serde_json::from_slice::<Vec<String>>(&bytes)
                .map_err(|_| "X-Amp-Exp-Flag-Keys is not a JSON array of strings")?
        }
        _ => query_flag_keys(params),
    };
    let context = eval::user_to_context(&user);
    eval::evaluate_json(flags, &context, &keys, shape).map_err(Problem::Evaluation)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `flag_key` and `flag_keys` comma lists, trimmed, in order, without empties.
fn query_flag_keys(params: &[(String, String)]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for (_, list) in params
        .iter()
        .filter(|(n, _)| n == "flag_key" || n == "flag_keys")
    {
        for key in list.split(',').map(str::trim).filter(|k| !k.is_empty()) {
            if !keys.iter().any(|k| k == key) {
                keys.push(key.to_string());
            }
        }
    }
    keys
}

fn object(bytes: &[u8]) -> Option<Map<String, Value>> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn json(body: Vec<u8>) -> UpstreamResponse {
    respond(StatusCode::OK, Bytes::from(body))
}

fn error(status: StatusCode, message: &str) -> UpstreamResponse {
    let body =
        serde_json::to_vec(&serde_json::json!({ "error": message })).expect("JSON serializes");
    respond(status, Bytes::from(body))
}

fn respond(status: StatusCode, body: Bytes) -> UpstreamResponse {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    UpstreamResponse {
        status,
        headers,
        body,
    }
}

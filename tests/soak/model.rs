//! The soak's model of the upstream: a pure function from a request to the answer the
//! upstream gives it (when it does not fault).
//!
//! The soak upstream answers with [`answer`] applied to the request it receives, and every
//! answer a client gets is checked against [`answer`] applied to the request the *client*
//! sent. The two agree exactly when the gateway kept the cache rule: a cached answer is what
//! the upstream would have answered to this request. So the model reads requests the way
//! the evaluation API does (by meaning, not by spelling: parameter order, percent-encoding,
//! JSON key order and whitespace, the `Api-Key` scheme's case do not matter) and echoes
//! everything that matters (deployment key, user, flags, tracking, SDK parameters): two
//! requests that mean different things always get different answers.
//!
//! Written independently of the gateway's normalizer (own form and base64 decoding), so a
//! bug there is not mirrored here. The soak's generated users contain no `null` members
//! (which the gateway drops at lookup levels, as the service ignores them).

use std::collections::BTreeSet;

use base64::Engine as _;
use serde_json::{Value, json};

/// Deployment keys starting with this are unknown to the upstream: always 401.
pub const BAD_KEY_PREFIX: &str = "bad-";

/// The upstream's answer to one request: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    fn ok(body: Value) -> Answer {
        Answer { status: 200, body }
    }
    fn bad_request(why: &str) -> Answer {
        Answer {
            status: 400,
            body: json!({ "model_error": why }),
        }
    }
}

/// One request, as a client sends it or the upstream receives it.
pub struct Request<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    /// Header (name, value) pairs; names compared without case.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the upstream answers to `req`.
pub fn answer(req: &Request) -> Answer {
    let (path, query) = req
        .path_and_query
        .split_once('?')
        .unwrap_or((req.path_and_query, ""));
    let route = match (req.method, path) {
        ("GET", "/v1/vardata") => "v1",
        ("GET" | "POST", "/sdk/v2/vardata") => "sdk-v2",
        ("GET", "/sdk/v2/flags") => "flags",
        _ => return echo(req),
    };
    let Some(key) = deployment_key(req) else {
        return Answer {
            status: 401,
            body: json!({ "model_error": "unknown deployment key" }),
        };
    };
    let Some(params) = form_pairs(query) else {
        return Answer::bad_request("query is not UTF-8 form data");
    };
    let param = |name: &str| -> Option<&str> {
        params
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let track = req.header("x-amp-exp-track");
    match route {
        "v1" => {
            let context = match param("context").filter(|c| !c.is_empty()) {
                None => json!({}),
                Some(text) => match serde_json::from_str::<Value>(text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => return Answer::bad_request("context is not a JSON object"),
                },
            };
            Answer::ok(json!({
                "route": route,
                "key": key,
                "user_id": param("user_id").unwrap_or(""),
                "device_id": param("device_id").unwrap_or(""),
                "context": context,
                "flags": query_flags(&params, &["flag_key", "flag_keys"]),
                "track": track,
            }))
        }
        "sdk-v2" => {
            let raw_user: Option<Vec<u8>> = if req.method == "POST" {
                (!req.body.iter().all(u8::is_ascii_whitespace)).then(|| req.body.to_vec())
            } else {
                match req.header("x-amp-exp-user").map(base64_any) {
                    None => None,
                    Some(Some(bytes)) => Some(bytes),
                    Some(None) => return Answer::bad_request("X-Amp-Exp-User is not base64"),
                }
            };
            let user = match raw_user {
                None => json!({}),
                Some(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => return Answer::bad_request("user is not a JSON object"),
                },
            };
            let flags: BTreeSet<String> = match req.header("x-amp-exp-flag-keys") {
                Some(text) => {
                    let decoded = base64_any(text)
                        .and_then(|b| serde_json::from_slice::<Vec<String>>(&b).ok());
                    match decoded {
                        Some(list) => list.into_iter().collect(),
                        None => return Answer::bad_request("X-Amp-Exp-Flag-Keys"),
                    }
                }
                None => query_flags(&params, &["flag_key", "flag_keys"]),
            };
            Answer::ok(json!({
                "route": route,
                "key": key,
                "user": user,
                "flags": flags,
                "v": param("v"),
                "eval_mode": param("eval_mode"),
                "delivery_method": param("delivery_method"),
                "track": track,
            }))
        }
        _ => Answer::ok(json!([{
            "route": route,
            "key": key,
            "flags": query_flags(&params, &["flag_keys"]),
            "v": param("v"),
            "eval_mode": param("eval_mode"),
            "delivery_method": param("delivery_method"),
            "track": track,
        }])),
    }
}

/// Any other request is echoed as received (what a passthrough must deliver).
fn echo(req: &Request) -> Answer {
    Answer::ok(json!({
        "route": "other",
        "method": req.method,
        "path_and_query": req.path_and_query,
        "body": String::from_utf8_lossy(req.body),
    }))
}

/// `Authorization: Api-Key <key>` (scheme in any case, whitespace around ignored), unless
/// missing or a bad key.
fn deployment_key(req: &Request) -> Option<String> {
    let value = req.header("authorization")?.trim();
    let (scheme, key) = value.split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("api-key") && !key.is_empty() && !key.starts_with(BAD_KEY_PREFIX))
        .then(|| key.to_string())
}

/// The union of comma-separated lists under `names`: trimmed, empties dropped, as a set.
fn query_flags(params: &[(String, String)], names: &[&str]) -> BTreeSet<String> {
    params
        .iter()
        .filter(|(n, _)| names.contains(&n.as_str()))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(String::from)
        .collect()
}

/// `application/x-www-form-urlencoded` pairs; `None` for bad escapes or non-UTF-8.
pub fn form_pairs(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((form_decode(n)?, form_decode(v)?))
        })
        .collect()
}

fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Base64 in any of the SDKs' flavours: standard or URL-safe, padded or not.
pub fn base64_any(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

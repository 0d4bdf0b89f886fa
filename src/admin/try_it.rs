//! `POST /admin/try`: the status page's "try it" form. Builds a `GET /v1/vardata` from
//! the form and answers it through [`Gateway::handle_unsimulated`] in-process, so it is
//! keyed, cached and counted exactly like real traffic (a `[simulation]` applied to every
//! client request is not: an operator's try shows evalgate's own answer), then reports
//! `{status, x_cache, age, body}`.

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use serde::Deserialize;

use crate::gateway::Gateway;
use crate::normalize::form::encode_into;
use crate::response::{Body, X_CACHE};

/// The form, as JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Form {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    device_id: String,
    /// A list, or one comma-separated string.
    #[serde(default)]
    flag_keys: FlagKeys,
    /// A JSON object, or its text; empty means none.
    #[serde(default)]
    context: Option<serde_json::Value>,
    deployment_key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum FlagKeys {
    #[default]
    None,
    List(Vec<String>),
    Text(String),
}

/// `POST /admin/try`.
pub async fn handle(gateway: &Gateway, body: &Bytes) -> Response<Body> {
    let form: Form = match serde_json::from_slice(body) {
        Ok(form) => form,
        Err(e) => return super::error(StatusCode::BAD_REQUEST, &format!("invalid form: {e}")),
    };
    let request = match build(&form) {
        Ok(request) => request,
        Err(problem) => return super::error(StatusCode::BAD_REQUEST, problem),
    };
    let response = gateway.handle_unsimulated(request).await;
    let status = response.status().as_u16();
    let text = |name: &http::HeaderName| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let x_cache = text(&X_CACHE);
    let age = text(&header::AGE);
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let body = serde_json::from_slice::<serde_json::Value>(&bytes)
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned().into());
    super::json(
        StatusCode::OK,
        &serde_json::json!({
            "status": status,
            "x_cache": x_cache,
            "age": age,
            "body": body,
        }),
    )
}

/// The `/v1/vardata` request the form describes.
fn build(form: &Form) -> Result<Request<Empty<Bytes>>, &'static str> {
    let key = form.deployment_key.trim();
    if key.is_empty() {
        return Err("deployment_key is required");
    }
    let auth = HeaderValue::try_from(format!("Api-Key {key}"))
        .map_err(|_| "deployment_key is not a valid header value")?;
    let flag_keys = match &form.flag_keys {
        FlagKeys::None => String::new(),
        FlagKeys::List(keys) => keys.join(","),
        FlagKeys::Text(text) => text.clone(),
    };
    let context = match &form.context {
        None | Some(serde_json::Value::Null) => String::new(),
        Some(serde_json::Value::String(text)) if text.trim().is_empty() => String::new(),
        Some(serde_json::Value::String(text)) => {
            match serde_json::from_str::<serde_json::Value>(text) {
                Ok(value @ serde_json::Value::Object(_)) => value.to_string(),
                _ => return Err("context must be a JSON object"),
            }
        }
        Some(value @ serde_json::Value::Object(_)) => value.to_string(),
        Some(_) => return Err("context must be a JSON object"),
    };
    let mut target = String::from("/v1/vardata?");
    for (name, value) in [
        ("user_id", form.user_id.trim()),
        ("device_id", form.device_id.trim()),
        ("flag_key", flag_keys.trim()),
        ("context", context.as_str()),
    ] {
        if value.is_empty() {
            continue;
        }
        if !target.ends_with('?') {
            target.push('&');
        }
        target.push_str(name);
        target.push('=');
        encode_into(&mut target, value);
    }
    Request::builder()
        .method(Method::GET)
        .uri(target)
        .header(header::AUTHORIZATION, auth)
        .body(Empty::new())
        .map_err(|_| "the form does not make a valid request")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_a_vardata_request() {
        let form: Form = serde_json::from_value(serde_json::json!({
            "user_id": "u 1",
            "flag_keys": ["a", "b"],
            "context": "{\"user_properties\":{\"plan\":\"pro\"}}",
            "deployment_key": "server-key",
        }))
        .unwrap();
        let request = build(&form).unwrap();
        let uri = request.uri().to_string();
        assert!(uri.starts_with("/v1/vardata?user_id=u"), "{uri}");
        assert!(
            uri.contains("&flag_key=a%2Cb") || uri.contains("&flag_key=a,b"),
            "{uri}"
        );
        assert!(uri.contains("&context=%7B"), "{uri}");
        assert_eq!(
            request.headers()[header::AUTHORIZATION],
            "Api-Key server-key"
        );
    }

    #[test]
    fn rejects_a_context_that_is_not_an_object() {
        let form: Form = serde_json::from_value(serde_json::json!({
            "context": "[1]",
            "deployment_key": "k",
        }))
        .unwrap();
        assert!(build(&form).is_err());
    }
}

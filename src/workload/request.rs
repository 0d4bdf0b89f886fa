//! One request in each endpoint's form, exactly as the SDKs send it.
//!
//! - `v1`: `GET /v1/vardata?user_id=…&device_id=…&context=…&flag_keys=a,b`; the context
//!   is the user without its ids (the server writes the query's ids over it).
//! - `v2get`: `GET /sdk/v2/vardata?v=0` with `X-Amp-Exp-User` (and for a subset
//!   `X-Amp-Exp-Flag-Keys`) as URL-safe unpadded base64 of compact JSON, as
//!   `@amplitude/experiment-core` does.
//! - `v2post`: `POST /sdk/v2/vardata?v=0` with the user as the JSON body and
//!   `Content-Type: application/json;charset=utf-8`, as the Python SDK does.
//!
//! Every request carries `Authorization: Api-Key <key>`. A bad-key request carries
//! [`BAD_KEY`] instead (401). A bad-context request carries a user that is not JSON (its
//! last `}` cut): on `v1` that is the documented 400 of the evaluation API; on the SDK
//! routes evalgate's embedded engine answers 400 too, while what Amplitude answers there
//! is undocumented.

use super::endpoint::Endpoint;
use super::user::User;
use crate::b64;
use crate::normalize::form;

/// The deployment key bad-key requests carry.
pub const BAD_KEY: &str = "workload-unknown-deployment-key";

/// What is wrong with a request on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    None,
    /// A deployment key the server does not know: 401.
    BadKey,
    /// A user that is not JSON: 400.
    BadContext,
}

/// A request to write: method, absolute URL, header fields in order, optional body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Option<String>,
}

/// What one request asks: where, for whom, which flags (`None` = all), flawed how.
pub struct Ask<'a> {
    pub endpoint: Endpoint,
    pub user: &'a User,
    pub flag_keys: Option<&'a [&'a str]>,
    pub flaw: Flaw,
}

/// Writes `ask` as a request to `base_url` with `key` as the good deployment key.
pub fn encode(base_url: &str, key: &str, ask: &Ask<'_>) -> Request {
    let key = if ask.flaw == Flaw::BadKey {
        BAD_KEY
    } else {
        key
    };
    let mut headers = vec![("Authorization", format!("Api-Key {key}"))];
    let flawed = |json: String| {
        if ask.flaw == Flaw::BadContext {
            // Cut the closing brace: not JSON any more, and not an object.
            json[..json.len() - 1].to_string()
        } else {
            json
        }
    };
    match ask.endpoint {
        Endpoint::V1 => {
            let mut url = format!("{base_url}/v1/vardata");
            let mut sep = '?';
            let mut param = |name: &str, value: &str| {
                url.push(sep);
                sep = '&';
                url.push_str(name);
                url.push('=');
                form::encode_into(&mut url, value);
            };
            if let Some(id) = &ask.user.user_id {
                param("user_id", id);
            }
            if let Some(id) = &ask.user.device_id {
                param("device_id", id);
            }
            if !ask.user.rest.is_empty() || ask.flaw == Flaw::BadContext {
                param("context", &flawed(ask.user.context_json()));
            }
            if let Some(keys) = ask.flag_keys {
                url.push(sep);
                url.push_str("flag_keys=");
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        url.push(',');
                    }
                    form::encode_into(&mut url, k);
                }
            }
            Request {
                method: "GET",
                url,
                headers,
                body: None,
            }
        }
        Endpoint::V2Get | Endpoint::V2Post => {
            let url = format!("{base_url}/sdk/v2/vardata?v=0");
            let user = flawed(ask.user.to_json());
            let post = ask.endpoint == Endpoint::V2Post;
            if post {
                headers.push(("Content-Type", "application/json;charset=utf-8".into()));
            } else {
                headers.push(("X-Amp-Exp-User", b64::encode_url(user.as_bytes())));
            }
            if let Some(keys) = ask.flag_keys {
                let list = serde_json::to_string(keys).expect("strings serialize");
                headers.push(("X-Amp-Exp-Flag-Keys", b64::encode_url(list.as_bytes())));
            }
            Request {
                method: if post { "POST" } else { "GET" },
                url,
                headers,
                body: post.then_some(user),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue, Method};

    use super::*;
    use crate::config::FlagKeysParam;
    use crate::normalize::{self, BypassReason, Decision, Limits};

    /// What evalgate's own normalization makes of a request.
    fn decide(r: &Request) -> Decision {
        let uri: http::Uri = r.url.parse().unwrap();
        let mut headers = HeaderMap::new();
        for (n, v) in &r.headers {
            headers.append(*n, HeaderValue::from_str(v).unwrap());
        }
        let limits = Limits {
            max_context_bytes: 8192,
            flag_keys_param: FlagKeysParam::FlagKeys,
            tracking: crate::config::Tracking::Passthrough,
        };
        normalize::normalize(
            &Method::from_bytes(r.method.as_bytes()).unwrap(),
            uri.path(),
            uri.query(),
            &headers,
            r.body.as_deref().unwrap_or("").as_bytes(),
            &limits,
        )
        .unwrap()
    }

    #[test]
    fn good_requests_are_cacheable_and_flawed_ones_are_not() {
        let keys = ["a", "b c"];
        for i in 0..300 {
            let user = User::generate(3, i, 0.3);
            for endpoint in Endpoint::ALL {
                for flag_keys in [None, Some(&keys[..])] {
                    let ask = |flaw| Ask {
                        endpoint,
                        user: &user,
                        flag_keys,
                        flaw,
                    };
                    let good = encode("http://h:1", "k1", &ask(Flaw::None));
                    assert!(matches!(decide(&good), Decision::Cache(_)), "{good:?}");
                    let bad_key = encode("http://h:1", "k1", &ask(Flaw::BadKey));
                    assert!(matches!(decide(&bad_key), Decision::Cache(_)));
                    assert!(bad_key.headers[0].1.ends_with(BAD_KEY));
                    let bad = encode("http://h:1", "k1", &ask(Flaw::BadContext));
                    let want = if endpoint == Endpoint::V1 {
                        BypassReason::InvalidContext
                    } else {
                        BypassReason::InvalidUser
                    };
                    assert!(
                        matches!(decide(&bad), Decision::Bypass(r) if r == want),
                        "{bad:?}"
                    );
                    assert!(good.url.len() < 16_384, "fits server.max_query_bytes");
                }
            }
        }
    }
}

//! `Cache-Control` towards clients (`cache.client_cache_control`): what browsers and
//! intermediaries may do with the answers of the cacheable routes.
//!
//! The default, `no-store`, keeps every answer out of every cache after evalgate: an
//! answer is one user's evaluation, and `/sdk/v2/vardata` GETs carry the user in a header
//! (`X-Amp-Exp-User`) under one URL for everybody, so a stored answer could be handed to
//! the next user of the same browser (a `fetch` with `cache: "force-cache"`, back/forward
//! navigation) or of a shared proxy. The SDKs keep variants themselves (localStorage);
//! the HTTP cache adds nothing for them.
//!
//! The configured value goes on successful answers only: an error (evalgate's own, or
//! the upstream's relayed) says `no-store`, so that a value such as `private, max-age=60`
//! never has a browser reuse a `503` for a minute. With `""` evalgate sends none, and
//! relayed answers keep the upstream's `Cache-Control` and `Expires`. The upstream's
//! targeted fields (RFC 9213 `CDN-Cache-Control`, `<CDN>-CDN-Cache-Control`,
//! `Surrogate-Control`) are never relayed: they address the upstream's own CDN, and a CDN
//! in front of evalgate would otherwise store one user's answer for everybody.

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};

use crate::config::ConfigError;

/// The configured value, precomputed (`None`: send none).
#[derive(Debug, Clone)]
pub struct ClientCacheControl(Option<HeaderValue>);

/// The default of `cache.client_cache_control`, and what every error says.
pub const DEFAULT: &str = "no-store";

/// `CDN-Cache-Control` (RFC 9213), and the suffix of the fields one CDN reads
/// (`Cloudflare-CDN-Cache-Control`, `Akamai-CDN-Cache-Control`, …).
const CDN_CACHE_CONTROL: &str = "cdn-cache-control";

/// The Edge Architecture's field for surrogates (Fastly, Varnish, Akamai).
const SURROGATE_CONTROL: &str = "surrogate-control";

impl ClientCacheControl {
    /// From `cache.client_cache_control` ("" = none); an invalid value is the same
    /// [`ConfigError`] validation reports.
    pub fn new(value: &str) -> Result<ClientCacheControl, ConfigError> {
        crate::config::client_cache_control(value)?;
        Ok(ClientCacheControl(match value {
            "" => None,
            // Static: clones cost no reference count on the hit path.
            DEFAULT => Some(HeaderValue::from_static(DEFAULT)),
            other => Some(
                HeaderValue::from_str(other).map_err(|_| ConfigError::Invalid {
                    key: "cache.client_cache_control",
                    problem: "must be a Cache-Control value".into(),
                })?,
            ),
        }))
    }

    /// Sets the `Cache-Control` of an answer with this `status` (not a preflight's):
    /// the configured value on a success (2xx, or a `304` confirming one), `no-store` on
    /// anything else. `relayed`: it may carry the upstream's headers, whose targeted
    /// fields are dropped, and whose `Cache-Control` and `Expires` are replaced (or, with
    /// "", kept), so that an answer says the same whether it was a hit or a miss.
    pub fn apply(&self, headers: &mut HeaderMap, status: StatusCode, relayed: bool) {
        if relayed {
            super::remove_matching(headers, is_targeted);
        }
        let Some(value) = &self.0 else {
            return;
        };
        if relayed {
            headers.remove(header::EXPIRES);
        }
        let value = if status.is_success() || status == StatusCode::NOT_MODIFIED {
            value.clone()
        } else {
            HeaderValue::from_static(DEFAULT)
        };
        headers.insert(header::CACHE_CONTROL, value);
    }
}

/// Whether `name` is a cache-control field targeted at a CDN or surrogate.
fn is_targeted(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.ends_with(CDN_CACHE_CONTROL) || name == SURROGATE_CONTROL
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relayed(
        value: &str,
        status: StatusCode,
        upstream: &[(&'static str, &'static str)],
    ) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, v) in upstream {
            headers.append(*name, HeaderValue::from_static(v));
        }
        ClientCacheControl::new(value)
            .unwrap()
            .apply(&mut headers, status, true);
        headers
    }

    const UPSTREAM: [(&str, &str); 6] = [
        ("cache-control", "private"),
        ("expires", "Thu, 01 Dec 2099 16:00:00 GMT"),
        ("cdn-cache-control", "max-age=600"),
        ("cloudflare-cdn-cache-control", "max-age=600"),
        ("surrogate-control", "max-age=600"),
        ("x-kept", "1"),
    ];

    #[test]
    fn the_value_goes_on_successes_and_no_store_on_errors() {
        let ok = relayed("private, max-age=60", StatusCode::OK, &UPSTREAM);
        assert_eq!(ok.len(), 2, "{ok:?}");
        assert_eq!(ok[header::CACHE_CONTROL], "private, max-age=60");
        assert_eq!(ok["x-kept"], "1");
        for status in [401, 429, 502, 503, 504] {
            let status = StatusCode::from_u16(status).unwrap();
            let err = relayed("private, max-age=60", status, &UPSTREAM);
            assert_eq!(err.len(), 2, "{status}: {err:?}");
            assert_eq!(err[header::CACHE_CONTROL], "no-store", "{status}");
        }
        let mut built = HeaderMap::new();
        ClientCacheControl::new("private, max-age=60")
            .unwrap()
            .apply(&mut built, StatusCode::SERVICE_UNAVAILABLE, false);
        assert_eq!(built[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn empty_keeps_the_upstreams_own_but_never_its_targeted_fields() {
        for status in [StatusCode::OK, StatusCode::UNAUTHORIZED] {
            let kept = relayed("", status, &UPSTREAM);
            assert_eq!(kept.len(), 3, "{kept:?}");
            assert_eq!(kept[header::CACHE_CONTROL], "private");
            assert!(kept.contains_key(header::EXPIRES));
        }
        let mut built = HeaderMap::new();
        ClientCacheControl::new("")
            .unwrap()
            .apply(&mut built, StatusCode::GATEWAY_TIMEOUT, false);
        assert!(built.is_empty(), "{built:?}");
    }

    #[test]
    fn an_invalid_value_is_a_config_error() {
        let err = ClientCacheControl::new("no-store\r\nx: 1").unwrap_err();
        assert!(
            err.to_string().starts_with("`cache.client_cache_control`"),
            "{err}"
        );
    }
}

//! `Cache-Control` towards clients (`cache.client_cache_control`): what browsers and
//! intermediaries may do with the answers of the cacheable routes.
//!
//! The default, `no-store`, keeps every answer out of every cache after evalgate: an
//! answer is one user's evaluation, and `/sdk/v2/vardata` GETs carry the user in a header
//! (`X-Amp-Exp-User`) under one URL for everybody, so a stored answer could be handed to
//! the next user of the same browser (a `fetch` with `cache: "force-cache"`, back/forward
//! navigation) or of a shared proxy. The SDKs keep variants themselves (localStorage);
//! the HTTP cache adds nothing for them.

use http::{HeaderMap, HeaderValue, header};

/// The configured value, precomputed (`None`: send none).
#[derive(Debug, Clone)]
pub struct ClientCacheControl(Option<HeaderValue>);

/// The default of `cache.client_cache_control`.
pub const DEFAULT: &str = "no-store";

impl ClientCacheControl {
    /// From a validated `cache.client_cache_control` (visible ASCII and spaces; "" = none).
    pub fn new(value: &str) -> ClientCacheControl {
        ClientCacheControl(match value {
            "" => None,
            // Static: clones cost no reference count on the hit path.
            DEFAULT => Some(HeaderValue::from_static(DEFAULT)),
            other => Some(HeaderValue::from_str(other).expect("validated header value")),
        })
    }

    /// Sets the answer's `Cache-Control` to the configured value, replacing (or, with "",
    /// removing) any the upstream sent, and drops the upstream's `Expires` (the older form
    /// of the same statement), so every answer of a route says the same, hit or miss.
    pub fn apply(&self, headers: &mut HeaderMap, relayed: bool) {
        if relayed {
            headers.remove(header::EXPIRES);
            if self.0.is_none() {
                headers.remove(header::CACHE_CONTROL);
            }
        }
        if let Some(value) = &self.0 {
            headers.insert(header::CACHE_CONTROL, value.clone());
        }
    }
}

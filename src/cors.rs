//! CORS on the evaluation and flag routes (every [`RouteFamily`]): evalgate answers
//! preflights itself and adds the same CORS headers to every answer there, hit or miss,
//! from the request's own `Origin` (never stored with an entry).
//!
//! The policy is `cors.allowed_origins`: `["*"]` (any page may read the answers:
//! `Access-Control-Allow-Origin: *`, the same bytes for every request, so no `Vary`), a list
//! of origins (an allowed `Origin` is echoed, and every answer says `Vary: Origin`), or `[]`
//! (no CORS headers at all). Credentials are never allowed: the SDKs send none, and `*`
//! could not be used with them.
//!
//! Everything a response gets is precomputed here as static [`HeaderValue`]s; per request
//! the policy `*` costs a few header inserts, and a request without `Origin` (a server)
//! no allocation under any policy.

pub mod origin;

use http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ALLOW, ORIGIN,
};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::config::{ConfigError, CorsConfig};
use crate::key::RouteFamily;
use crate::response::{self, FORWARDED_METHODS, append_vary, remove_vary};
use origin::Origin;

/// The request headers the SDKs and `fetch` callers send on these routes, allowed in every
/// preflight answer: the deployment key, the JSON body's type (SDK POSTs), the SDKs'
/// user, flag keys and tracking headers, and the library name the flag fetchers send.
pub const ALLOWED_HEADERS: &str = "Authorization, Content-Type, X-Amp-Exp-User, \
    X-Amp-Exp-Flag-Keys, X-Amp-Exp-Track, X-Amp-Exp-Exposure-Track, X-Amp-Exp-Library";

/// The response headers a page may read besides the CORS-safelisted ones: how the cache
/// answered, the answer's age, which tier answered, and when to retry a 503.
pub const EXPOSED_HEADERS: &str = "X-Cache, X-Cache-Tier, Age, Retry-After";

/// The methods a page may use on a route (`Access-Control-Allow-Methods`): those it
/// answers from the cache, and `OPTIONS`. (`Allow` lists every method evalgate serves or
/// forwards there, as on a `405`: [`FORWARDED_METHODS`].)
pub fn methods(route: RouteFamily) -> &'static str {
    match route {
        RouteFamily::SdkV2Vardata | RouteFamily::SdkVardata => "GET, HEAD, POST, OPTIONS",
        RouteFamily::V1Vardata | RouteFamily::SdkV2Flags | RouteFamily::V1Flags => {
            "GET, HEAD, OPTIONS"
        }
    }
}

/// The `Vary` token of an answer that depends on the request's `Origin`.
const VARY_ORIGIN: &str = "Origin";

/// The prefix of every CORS response header; the upstream's are not relayed.
const CORS_PREFIX: &str = "access-control-";

/// What `cors.allowed_origins` allows.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// `["*"]`.
    Any,
    /// These origins, serialized (lowercase, default port left out).
    List(Vec<String>),
}

/// The CORS policy, built once from `[cors]`.
#[derive(Debug, Clone)]
pub struct Cors {
    allowed: Allowed,
    /// `Access-Control-Allow-Headers`: [`ALLOWED_HEADERS`] and `cors.allowed_headers_extra`.
    allow_headers: HeaderValue,
    /// `Access-Control-Max-Age`.
    max_age: HeaderValue,
}

/// What one request is granted: decided before the request is answered, applied to its
/// answer whatever produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// `Access-Control-Allow-Origin: *` (the policy is `*`), whoever asks.
    Any,
    /// This allowed origin, echoed as the request sent it.
    Origin(HeaderValue),
    /// No CORS headers: no `Origin`, an origin not allowed, or CORS off.
    Refused,
}

impl Cors {
    /// The policy of `[cors]`; an invalid one is the [`ConfigError`] validation reports.
    pub fn new(config: &CorsConfig) -> Result<Cors, ConfigError> {
        config.validate()?;
        let allowed = if config.allowed_origins.iter().any(|o| o == "*") {
            Allowed::Any
        } else {
            // Validated: every entry parses.
            Allowed::List(
                config
                    .allowed_origins
                    .iter()
                    .filter_map(|o| Origin::parse(o).ok())
                    .map(|o| o.serialized())
                    .collect(),
            )
        };
        let allow_headers = if config.allowed_headers_extra.is_empty() {
            HeaderValue::from_static(ALLOWED_HEADERS)
        } else {
            let extra = config.allowed_headers_extra.join(", ");
            HeaderValue::from_str(&format!("{ALLOWED_HEADERS}, {extra}")).map_err(|_| {
                ConfigError::Invalid {
                    key: "cors.allowed_headers_extra",
                    problem: "not header names".into(),
                }
            })?
        };
        Ok(Cors {
            allowed,
            allow_headers,
            max_age: HeaderValue::from(config.max_age_s),
        })
    }

    /// What a request with these headers is granted.
    pub fn grant(&self, headers: &HeaderMap) -> Grant {
        let list = match &self.allowed {
            Allowed::Any => return Grant::Any,
            Allowed::List(list) if list.is_empty() => return Grant::Refused,
            Allowed::List(list) => list,
        };
        let mut origins = headers.get_all(ORIGIN).iter();
        let (Some(value), None) = (origins.next(), origins.next()) else {
            // None, or several: a browser sends exactly one.
            return Grant::Refused;
        };
        let Ok(text) = value.to_str() else {
            return Grant::Refused;
        };
        // Browsers send the serialized form: most allowed origins match byte for byte.
        if list.iter().any(|o| o == text) {
            return Grant::Origin(value.clone());
        }
        let Ok(asked) = Origin::parse(text) else {
            return Grant::Refused;
        };
        if asked.is_serialized() {
            return Grant::Refused;
        }
        let same = |o: &String| Origin::parse(o).is_ok_and(|allowed| allowed.same(&asked));
        if list.iter().any(same) {
            Grant::Origin(value.clone())
        } else {
            Grant::Refused
        }
    }

    /// Whether answers depend on the request's `Origin` (a list of origins), so every
    /// answer on these routes says `Vary: Origin`, even one that carries no CORS header.
    fn varies(&self) -> bool {
        matches!(&self.allowed, Allowed::List(list) if !list.is_empty())
    }

    /// The answer to an `OPTIONS` on `route`: `204` with `Allow` (every method evalgate
    /// serves or forwards there, the `Allow` of a `405`), and for a granted origin the
    /// preflight's `Access-Control-Allow-Methods` (the route's), `-Allow-Headers` and
    /// `-Max-Age` (the same whatever the preflight asks: the browser checks them). The
    /// headers of every answer ([`Cors::apply`]) are added by the caller.
    pub fn preflight(&self, route: RouteFamily, grant: &Grant) -> Response<response::Body> {
        let mut answer = Response::new(response::Body::default());
        *answer.status_mut() = StatusCode::NO_CONTENT;
        let headers = answer.headers_mut();
        headers.insert(ALLOW, HeaderValue::from_static(FORWARDED_METHODS));
        if *grant != Grant::Refused {
            headers.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(methods(route)),
            );
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, self.allow_headers.clone());
            headers.insert(ACCESS_CONTROL_MAX_AGE, self.max_age.clone());
        }
        answer
    }

    /// Adds the CORS headers of `grant` to an answer on a route of this policy:
    /// `Access-Control-Allow-Origin` and `-Expose-Headers`, and `Vary: Origin` when the
    /// policy is a list (appended to any `Vary` already there).
    pub fn apply(&self, grant: Grant, headers: &mut HeaderMap) {
        let allow = match grant {
            Grant::Any => Some(HeaderValue::from_static("*")),
            Grant::Origin(origin) => Some(origin),
            Grant::Refused => None,
        };
        if let Some(allow) = allow {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
            headers.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSED_HEADERS),
            );
        }
        if self.varies() {
            append_vary(headers, VARY_ORIGIN);
        }
    }
}

/// Removes the upstream's `Access-Control-*` headers from a relayed answer, and the
/// `Origin` token from its `Vary` (what varies on `Origin` here is evalgate's to say), so
/// what a page may read, and what a cache keys on, never depends on whether the answer
/// was a hit. Allocates only when there is one to remove.
pub fn strip_upstream(headers: &mut HeaderMap) {
    crate::response::remove_matching(headers, |name| name.as_str().starts_with(CORS_PREFIX));
    remove_vary(headers, VARY_ORIGIN);
}

#[cfg(test)]
mod tests;

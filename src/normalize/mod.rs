//! Normalization: a request head in, a cache key (the canonical upstream request) or a
//! reason not to cache out. Pure: no I/O, no clocks, no shared state.
//!
//! The rules for `GET /v1/vardata` (README, "Cache key"):
//! - the query is form-urlencoded-decoded; parameter order never matters;
//! - `user_id`, `device_id`: missing and empty are the same;
//! - `flag_key` and `flag_keys`: comma lists, trimmed, de-duplicated, sorted and merged;
//! - `context`: canonical user JSON ([`user`]); `{}` is no context;
//! - `Authorization: Api-Key <key>` and `X-Amp-Exp-Track` are part of the key;
//! - `d` (cache-buster) and `X-Amp-Exp-Exposure-Track: track` bypass the cache;
//! - every other parameter and header is dropped.

pub mod form;
pub mod user;

use std::borrow::Cow;
use std::collections::BTreeSet;

use http::{HeaderMap, HeaderValue, Method, header};

use crate::config::FlagKeysParam;
use crate::key::{CacheKey, RouteFamily};

/// What to do with a request on a cacheable route.
#[derive(Debug)]
pub enum Decision {
    /// Serve from the cache under this key, filling it from the upstream on a miss.
    Cache(CacheKey),
    /// Forward the request verbatim and relay the answer, storing nothing.
    Bypass(BypassReason),
    /// Refuse the request: a limit was exceeded.
    Reject(Rejection),
}

/// Why a request goes around the cache. Closed, so it can label logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BypassReason {
    /// A method other than GET or HEAD.
    Method,
    /// The `d` query parameter: the SDKs' cache-buster.
    CacheBuster,
    /// `X-Amp-Exp-Exposure-Track: track`, or a value evalgate does not know.
    ExposureTracking,
    /// No `Authorization: Api-Key <key>` header, or one that does not parse.
    Authorization,
    /// An `X-Amp-Exp-Track` header that is repeated or not visible ASCII.
    TrackHeader,
    /// A parameter that does not decode to UTF-8.
    InvalidUtf8,
    /// One of the key parameters repeated with different values.
    ConflictingParameter,
    /// `context` that is not JSON, not an object, or has a duplicate member name.
    InvalidContext,
}

impl BypassReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BypassReason::Method => "method",
            BypassReason::CacheBuster => "cache_buster",
            BypassReason::ExposureTracking => "exposure_tracking",
            BypassReason::Authorization => "authorization",
            BypassReason::TrackHeader => "track_header",
            BypassReason::InvalidUtf8 => "invalid_utf8",
            BypassReason::ConflictingParameter => "conflicting_parameter",
            BypassReason::InvalidContext => "invalid_context",
        }
    }
}

/// A limit the request exceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// The decoded `context` is longer than `server.max_context_bytes`.
    ContextTooLong,
}

/// The limits normalization enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_context_bytes: usize,
    pub flag_keys_param: FlagKeysParam,
}

/// The path evalgate caches in this family.
pub const V1_VARDATA: &str = "/v1/vardata";

/// Normalizes a `/v1/vardata` request.
pub fn v1_vardata(
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    limits: &Limits,
) -> Decision {
    use BypassReason as B;
    if method != Method::GET && method != Method::HEAD {
        return Decision::Bypass(B::Method);
    }
    let deployment = match deployment_key(headers) {
        Some(k) => k,
        None => return Decision::Bypass(B::Authorization),
    };
    let track = match single_header(headers, "x-amp-exp-track") {
        Ok(t) => t,
        Err(()) => return Decision::Bypass(B::TrackHeader),
    };
    match single_header(headers, "x-amp-exp-exposure-track") {
        Ok(None) => {}
        Ok(Some(v)) if v.eq_ignore_ascii_case("no-track") => {}
        _ => return Decision::Bypass(B::ExposureTracking),
    }

    let mut p = Params::default();
    // Only the parameters evalgate knows are decoded: anything else is dropped unread,
    // so junk in an unknown parameter can neither bust nor bypass the cache.
    for (raw_name, raw_value) in form::raw_pairs(query.unwrap_or("")) {
        let Ok(name) = form::decode(raw_name) else {
            continue;
        };
        let slot = match name.as_ref() {
            "user_id" => &mut p.user_id,
            "device_id" => &mut p.device_id,
            "context" => &mut p.context,
            "flag_key" => &mut p.flag_key,
            "flag_keys" => &mut p.flag_keys,
            "d" => return Decision::Bypass(B::CacheBuster),
            _ => continue,
        };
        let Ok(value) = form::decode(raw_value) else {
            return Decision::Bypass(B::InvalidUtf8);
        };
        match slot {
            Some(prev) if *prev != value => return Decision::Bypass(B::ConflictingParameter),
            Some(_) => {}
            None => *slot = Some(value),
        }
    }

    // An empty `context` is not `{}`: it is invalid JSON, for the upstream to judge.
    let context = match p.context.as_deref() {
        None => None,
        Some(c) if c.len() > limits.max_context_bytes => {
            return Decision::Reject(Rejection::ContextTooLong);
        }
        Some(c) => match user::canonical_user(c) {
            Ok(canonical) => canonical,
            Err(_) => return Decision::Bypass(B::InvalidContext),
        },
    };
    let flags = flag_set([p.flag_key.as_deref(), p.flag_keys.as_deref()]);

    let mut pq = String::with_capacity(64 + context.as_ref().map_or(0, |c| c.len() * 2));
    pq.push_str(V1_VARDATA);
    let mut q = QueryWriter(&mut pq, '?');
    if let Some(c) = &context {
        q.param("context", [c.as_str()]);
    }
    if let Some(d) = nonempty(&p.device_id) {
        q.param("device_id", [d]);
    }
    if !flags.is_empty() {
        if limits.flag_keys_param != FlagKeysParam::FlagKeys {
            q.param("flag_key", flags.iter().copied());
        }
        if limits.flag_keys_param != FlagKeysParam::FlagKey {
            q.param("flag_keys", flags.iter().copied());
        }
    }
    if let Some(u) = nonempty(&p.user_id) {
        q.param("user_id", [u]);
    }
    Decision::Cache(CacheKey::new(RouteFamily::V1Vardata, deployment, track, pq))
}

/// Appends `name=v1,v2,…` parameters to a canonical query: each value percent-encoded
/// ([`form::encode_into`]), list items joined by a literal comma.
struct QueryWriter<'a>(&'a mut String, char);

impl QueryWriter<'_> {
    fn param<'v>(&mut self, name: &str, values: impl IntoIterator<Item = &'v str>) {
        self.0.push(self.1);
        self.1 = '&';
        self.0.push_str(name);
        self.0.push('=');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.0.push(',');
            }
            form::encode_into(self.0, v);
        }
    }
}

#[derive(Default)]
struct Params<'a> {
    user_id: Option<Cow<'a, str>>,
    device_id: Option<Cow<'a, str>>,
    context: Option<Cow<'a, str>>,
    flag_key: Option<Cow<'a, str>>,
    flag_keys: Option<Cow<'a, str>>,
}

fn nonempty<'a>(v: &'a Option<Cow<'_, str>>) -> Option<&'a str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Merges comma-separated flag-key lists: trimmed, empties dropped, de-duplicated, sorted.
fn flag_set(lists: [Option<&str>; 2]) -> BTreeSet<&str> {
    lists
        .into_iter()
        .flatten()
        .flat_map(|l| l.split(','))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .collect()
}

/// The deployment key from `Authorization: Api-Key <key>`: the scheme in any case,
/// surrounding whitespace ignored. `None` when absent, repeated or malformed.
pub fn deployment_key(headers: &HeaderMap) -> Option<&str> {
    let value = single_header(headers, header::AUTHORIZATION.as_str()).ok()??;
    let (scheme, key) = value.split_once([' ', '\t'])?;
    let key = key.trim();
    let well_formed =
        scheme.eq_ignore_ascii_case("api-key") && !key.is_empty() && !key.contains([' ', '\t']);
    well_formed.then_some(key)
}

/// A header that appears at most once, as trimmed visible ASCII. `Err` when repeated or
/// not representable.
fn single_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(());
    }
    visible(first).map(|v| Some(v.trim())).ok_or(())
}

fn visible(v: &HeaderValue) -> Option<&str> {
    v.to_str().ok()
}

#[cfg(test)]
mod tests;

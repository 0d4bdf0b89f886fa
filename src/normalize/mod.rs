//! Normalization: a request in, a cache key (the canonical upstream request) or a reason
//! not to cache out. Pure: no I/O, no clocks, no shared state.
//!
//! [`normalize`] dispatches on the path to one module per endpoint family:
//! [`v1`] (`/v1/vardata`), [`sdk`] (`/sdk/v2/vardata`, `/sdk/vardata`) and [`flags`]
//! (`/sdk/v2/flags`, `/v1/flags`). Shared by all of them (README, "Cache key"):
//! - the query is form-urlencoded-decoded; parameter order never matters; only known
//!   parameters are read, every other one is dropped unread;
//! - `Authorization: Api-Key <key>` and `X-Amp-Exp-Track` are part of the key;
//! - `d` (cache-buster) and `X-Amp-Exp-Exposure-Track: track` bypass the cache;
//! - under `upstream.tracking = "never"` the client's tracking headers are not read: every
//!   key carries `no-track` for assignments and exposures;
//! - a known parameter repeated with different values, or not UTF-8, bypasses;
//! - users are canonical JSON ([`user`]; strings in one spelling, [`json`]); flag keys
//!   are trimmed, de-duplicated, sorted.

pub mod flags;
pub mod form;
pub mod json;
pub mod sdk;
pub mod user;
pub mod v1;

pub use v1::{V1_VARDATA, v1_vardata};

use std::borrow::Cow;
use std::collections::BTreeSet;

use http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use crate::config::{FlagKeysParam, Tracking};
use crate::key::{CacheKey, RouteFamily};

/// `X-Amp-Exp-Track`: part of the key, forwarded.
pub static X_AMP_EXP_TRACK: HeaderName = HeaderName::from_static("x-amp-exp-track");
/// `X-Amp-Exp-Exposure-Track`: `track` bypasses the cache.
pub static X_AMP_EXP_EXPOSURE_TRACK: HeaderName =
    HeaderName::from_static("x-amp-exp-exposure-track");
/// `X-Amp-Exp-User`: the SDKs' base64 user.
pub static X_AMP_EXP_USER: HeaderName = HeaderName::from_static("x-amp-exp-user");
/// `X-Amp-Exp-Flag-Keys`: the SDKs' base64 flag-key list.
pub static X_AMP_EXP_FLAG_KEYS: HeaderName = HeaderName::from_static("x-amp-exp-flag-keys");

/// Every header [`keyed_headers`] reads, and so every header `/v1/vardata` normalization
/// reads: the spelling memo ([`crate::spelling`]) records exactly these. Keep the two in
/// step.
pub static KEYED_HEADERS: [&HeaderName; 3] = [
    &header::AUTHORIZATION,
    &X_AMP_EXP_TRACK,
    &X_AMP_EXP_EXPOSURE_TRACK,
];

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
    /// An SDK user (base64 header or body) that does not decode to a canonical JSON object.
    InvalidUser,
    /// An `X-Amp-Exp-Flag-Keys` that is not base64 of a JSON array of strings.
    InvalidFlagKeys,
    /// A header evalgate does not key on but that may change the answer
    /// (`X-Amp-Exp-User` on a flags request).
    UnkeyedHeader,
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
            BypassReason::InvalidUser => "invalid_user",
            BypassReason::InvalidFlagKeys => "invalid_flag_keys",
            BypassReason::UnkeyedHeader => "unkeyed_header",
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_context_bytes: usize,
    pub flag_keys_param: FlagKeysParam,
    /// `upstream.tracking`: whether the client's tracking headers are keyed.
    pub tracking: Tracking,
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

/// Normalizes a request on a cacheable route; `None` for any other path (forwarded as
/// is). `body` is the request body, already read within `server.max_body_bytes`.
pub fn normalize(
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    limits: &Limits,
) -> Option<Decision> {
    Some(match path {
        V1_VARDATA => v1_vardata(method, query, headers, limits),
        sdk::SDK_V2_VARDATA => sdk::vardata(
            RouteFamily::SdkV2Vardata,
            method,
            query,
            headers,
            body,
            limits.tracking,
        ),
        sdk::SDK_VARDATA => sdk::vardata(
            RouteFamily::SdkVardata,
            method,
            query,
            headers,
            body,
            limits.tracking,
        ),
        flags::SDK_V2_FLAGS => flags::flags(
            RouteFamily::SdkV2Flags,
            method,
            query,
            headers,
            limits.tracking,
        ),
        flags::V1_FLAGS => flags::flags(
            RouteFamily::V1Flags,
            method,
            query,
            headers,
            limits.tracking,
        ),
        _ => return None,
    })
}

/// The cacheable family a path belongs to, `None` for any other path.
pub fn family(path: &str) -> Option<RouteFamily> {
    Some(match path {
        V1_VARDATA => RouteFamily::V1Vardata,
        sdk::SDK_V2_VARDATA => RouteFamily::SdkV2Vardata,
        sdk::SDK_VARDATA => RouteFamily::SdkVardata,
        flags::SDK_V2_FLAGS => RouteFamily::SdkV2Flags,
        flags::V1_FLAGS => RouteFamily::V1Flags,
        _ => return None,
    })
}

/// The checks of a read-only route (GET or HEAD) before its parameters: the method, then
/// [`keyed_headers`].
fn read_only_head<'h>(
    method: &Method,
    headers: &'h HeaderMap,
    tracking: Tracking,
) -> Result<Keyed<'h>, BypassReason> {
    if method != Method::GET && method != Method::HEAD {
        return Err(BypassReason::Method);
    }
    keyed_headers(headers, tracking)
}

/// `no-track`: the value of both tracking headers under `upstream.tracking = "never"`.
pub const NO_TRACK: &str = "no-track";

/// What the keyed headers put in a key: the deployment and the tracking headers to
/// forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keyed<'h> {
    pub deployment: &'h str,
    /// `X-Amp-Exp-Track` to forward.
    pub track: Option<&'h str>,
    /// `X-Amp-Exp-Exposure-Track` to forward.
    pub exposure_track: Option<&'h str>,
}

impl Keyed<'_> {
    /// A GET key of `route` for this deployment and these tracking headers.
    fn get_key(&self, route: RouteFamily, path_and_query: String) -> CacheKey {
        CacheKey::tracked(
            route,
            self.deployment,
            self.track,
            self.exposure_track,
            path_and_query,
        )
    }
}

/// The checks every cacheable route makes on its headers ([`KEYED_HEADERS`]): the
/// deployment key, the track header, exposure tracking. Under `upstream.tracking =
/// "never"` the client's tracking headers are not read at all: the key carries `no-track`
/// for both, so tracked and untracked requests share one entry.
fn keyed_headers(headers: &HeaderMap, tracking: Tracking) -> Result<Keyed<'_>, BypassReason> {
    let deployment = deployment_key(headers).ok_or(BypassReason::Authorization)?;
    if tracking == Tracking::Never {
        return Ok(Keyed {
            deployment,
            track: Some(NO_TRACK),
            exposure_track: Some(NO_TRACK),
        });
    }
    let track = single_header(headers, &X_AMP_EXP_TRACK).map_err(|()| BypassReason::TrackHeader)?;
    match single_header(headers, &X_AMP_EXP_EXPOSURE_TRACK) {
        Ok(None) => {}
        Ok(Some(v)) if v.eq_ignore_ascii_case("no-track") => {}
        _ => return Err(BypassReason::ExposureTracking),
    }
    Ok(Keyed {
        deployment,
        track,
        exposure_track: None,
    })
}

/// Reads the parameters named in `names` from a raw query, decoded; everything else is
/// dropped unread, so junk in an unknown parameter can neither bust nor bypass the cache.
/// `d` bypasses; a named parameter that is not UTF-8 or repeated with a different value
/// bypasses.
fn known_params<'q, const N: usize>(
    query: Option<&'q str>,
    names: [&str; N],
) -> Result<[Option<Cow<'q, str>>; N], BypassReason> {
    let mut values: [Option<Cow<'q, str>>; N] = std::array::from_fn(|_| None);
    for (raw_name, raw_value) in form::raw_pairs(query.unwrap_or("")) {
        let Ok(name) = form::decode(raw_name) else {
            continue;
        };
        if name == "d" {
            return Err(BypassReason::CacheBuster);
        }
        let Some(i) = names.iter().position(|n| *n == name) else {
            continue;
        };
        let value = form::decode(raw_value).map_err(|_| BypassReason::InvalidUtf8)?;
        match &values[i] {
            Some(prev) if *prev != value => return Err(BypassReason::ConflictingParameter),
            Some(_) => {}
            None => values[i] = Some(value),
        }
    }
    Ok(values)
}

fn nonempty<'a>(v: &'a Option<Cow<'_, str>>) -> Option<&'a str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// Merges comma-separated flag-key lists: trimmed, empties dropped, de-duplicated, sorted.
fn flag_set<'a>(lists: impl IntoIterator<Item = Option<&'a str>>) -> BTreeSet<&'a str> {
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
    let value = single_header(headers, &header::AUTHORIZATION).ok()??;
    let (scheme, key) = value.split_once([' ', '\t'])?;
    let key = key.trim();
    let well_formed =
        scheme.eq_ignore_ascii_case("api-key") && !key.is_empty() && !key.contains([' ', '\t']);
    well_formed.then_some(key)
}

/// A header that appears at most once, as trimmed visible ASCII. `Err` when repeated or
/// not representable.
fn single_header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a str>, ()> {
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
mod escape_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tracking_tests;

//! `GET|POST /sdk/v2/vardata` and the legacy `GET|POST /sdk/vardata`: the SDKs' remote
//! evaluation endpoints.
//!
//! - the user is base64 JSON in `X-Amp-Exp-User` (GET; any of the four base64 flavours)
//!   or the JSON body (POST), canonicalized like `context` on `/v1/vardata`;
//! - flag keys come from base64 JSON `X-Amp-Exp-Flag-Keys` when present (the header wins,
//!   as on the server), else from the `flag_key`/`flag_keys` query lists; de-duplicated
//!   and sorted (names inside the JSON array are exact: not trimmed, empties kept);
//! - `v`, `eval_mode`, `delivery_method` are part of the key and forwarded.
//!
//! **One canonical upstream form for GET and POST**: `POST <path>?delivery_method=…&eval_mode=…&v=…`
//! with the canonical user as a JSON body (`{}` for no user) and the canonical
//! `X-Amp-Exp-Flag-Keys` (URL-safe base64 of the sorted JSON array). A GET and a POST with
//! the same user and flags therefore share one entry. POST is the form that carries any
//! user size (a header may be capped by the upstream), and Amplitude's Python and JVM SDKs
//! use it against the same service.

use std::collections::BTreeSet;

use http::{HeaderMap, Method};

use super::{
    BypassReason, Decision, QueryWriter, flag_set, keyed_headers, known_params, single_header, user,
};
use crate::b64;
use crate::config::Tracking;
use crate::key::{CacheKey, CanonicalRequest, RouteFamily};

pub const SDK_V2_VARDATA: &str = "/sdk/v2/vardata";
pub const SDK_VARDATA: &str = "/sdk/vardata";

/// Normalizes an SDK vardata request for `route` (`SdkV2Vardata` or `SdkVardata`).
pub fn vardata(
    route: RouteFamily,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    tracking: Tracking,
) -> Decision {
    match canonical(route, method, query, headers, body, tracking) {
        Ok(request) => Decision::Cache(CacheKey::from(request)),
        Err(reason) => Decision::Bypass(reason),
    }
}

fn canonical(
    route: RouteFamily,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    tracking: Tracking,
) -> Result<CanonicalRequest, BypassReason> {
    let post = match *method {
        Method::GET | Method::HEAD => false,
        Method::POST => true,
        _ => return Err(BypassReason::Method),
    };
    let keyed = keyed_headers(headers, tracking)?;
    let [delivery_method, eval_mode, v, flag_key, flag_keys] = known_params(
        query,
        ["delivery_method", "eval_mode", "v", "flag_key", "flag_keys"],
    )?;

    // POST reads the body and GET the header, as the service does; the other is ignored
    // and not forwarded.
    let decoded;
    let raw_user: Option<&[u8]> = if post {
        (!body.iter().all(u8::is_ascii_whitespace)).then_some(body)
    } else {
        match single_header(headers, &super::X_AMP_EXP_USER) {
            Ok(None) => None,
            Ok(Some(text)) => {
                decoded = b64::decode(text).ok_or(BypassReason::InvalidUser)?;
                Some(&decoded)
            }
            Err(()) => return Err(BypassReason::InvalidUser),
        }
    };
    let user = match raw_user {
        None => None,
        Some(bytes) => {
            let text = std::str::from_utf8(bytes).map_err(|_| BypassReason::InvalidUser)?;
            user::canonical_user(text).map_err(|_| BypassReason::InvalidUser)?
        }
    };

    let keys: BTreeSet<String> = match single_header(headers, &super::X_AMP_EXP_FLAG_KEYS) {
        Ok(Some(text)) => {
            let bytes = b64::decode(text).ok_or(BypassReason::InvalidFlagKeys)?;
            let list: Vec<String> =
                serde_json::from_slice(&bytes).map_err(|_| BypassReason::InvalidFlagKeys)?;
            // Exact: an empty name is kept, as the service keeps it (`[""]` asks for no
            // flag at all, not for every flag).
            list.into_iter().collect()
        }
        Ok(None) => flag_set([flag_key.as_deref(), flag_keys.as_deref()])
            .into_iter()
            .map(String::from)
            .collect(),
        Err(()) => return Err(BypassReason::InvalidFlagKeys),
    };
    let flag_keys_header = (!keys.is_empty()).then(|| {
        let list: Vec<&String> = keys.iter().collect();
        b64::encode_url(
            serde_json::to_string(&list)
                .expect("strings serialize")
                .as_bytes(),
        )
    });

    let path = match route {
        RouteFamily::SdkVardata => SDK_VARDATA,
        _ => SDK_V2_VARDATA,
    };
    let mut path_and_query = String::from(path);
    let mut q = QueryWriter(&mut path_and_query, '?');
    for (name, value) in [
        ("delivery_method", &delivery_method),
        ("eval_mode", &eval_mode),
        ("v", &v),
    ] {
        if let Some(value) = value {
            q.param(name, [value.as_ref()]);
        }
    }
    Ok(CanonicalRequest {
        route,
        deployment: keyed.deployment.into(),
        track: keyed.track.map(Into::into),
        exposure_track: keyed.exposure_track.map(Into::into),
        path_and_query,
        flag_keys_header,
        body: Some(user.unwrap_or_else(|| "{}".into())),
    })
}

//! `GET /sdk/v2/flags` and `GET /v1/flags`: flag configurations for local-evaluation SDKs,
//! per deployment.
//!
//! The key is the deployment, `flag_keys` (comma list, trimmed, de-duplicated, sorted),
//! `delivery_method`, `eval_mode` and `v`; the canonical request is
//! `GET <path>?delivery_method=…&eval_mode=…&flag_keys=…&v=…`. Answers live for
//! `cache.flags_ttl_s`. A request carrying `X-Amp-Exp-User` (web experiments send the user
//! along) or a `flag_key` parameter bypasses: evalgate does not key on them.

use http::{HeaderMap, Method};

use super::{BypassReason, Decision, QueryWriter, flag_set, known_params, read_only_head};
use crate::config::Tracking;
use crate::key::RouteFamily;

pub const SDK_V2_FLAGS: &str = "/sdk/v2/flags";
pub const V1_FLAGS: &str = "/v1/flags";

/// Normalizes a flags request for `route` (`SdkV2Flags` or `V1Flags`).
pub fn flags(
    route: RouteFamily,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    tracking: Tracking,
) -> Decision {
    let keyed = match read_only_head(method, headers, tracking) {
        Ok(h) => h,
        Err(reason) => return Decision::Bypass(reason),
    };
    if headers.contains_key(&super::X_AMP_EXP_USER) {
        return Decision::Bypass(BypassReason::UnkeyedHeader);
    }
    let [delivery_method, eval_mode, flag_key, flag_keys, v] = match known_params(
        query,
        ["delivery_method", "eval_mode", "flag_key", "flag_keys", "v"],
    ) {
        Ok(p) => p,
        Err(reason) => return Decision::Bypass(reason),
    };
    // `flag_key` is not in the key, and upstreams differ on it here (the embedded engine
    // reads it, Amplitude documents only `flag_keys`): dropping it would answer "all
    // flags" where the upstream answers a subset, so such a request goes around the cache.
    if flag_key.is_some() {
        return Decision::Bypass(BypassReason::UnkeyedHeader);
    }
    let keys = flag_set([flag_keys.as_deref()]);
    let path = if route == RouteFamily::V1Flags {
        V1_FLAGS
    } else {
        SDK_V2_FLAGS
    };
    let mut path_and_query = String::from(path);
    let mut q = QueryWriter(&mut path_and_query, '?');
    if let Some(d) = &delivery_method {
        q.param("delivery_method", [d.as_ref()]);
    }
    if let Some(e) = &eval_mode {
        q.param("eval_mode", [e.as_ref()]);
    }
    if !keys.is_empty() {
        q.param("flag_keys", keys.iter().copied());
    }
    if let Some(v) = &v {
        q.param("v", [v.as_ref()]);
    }
    Decision::Cache(keyed.get_key(route, path_and_query))
}

//! `GET /v1/vardata`: the user in the query.
//!
//! - `user_id`, `device_id`: missing and empty are the same;
//! - `flag_key` and `flag_keys`: comma lists, merged;
//! - `context`: canonical user JSON ([`super::user`]); `{}` is no context.
//!
//! The canonical request is `GET /v1/vardata?context=…&device_id=…&flag_key=…&flag_keys=…&user_id=…`
//! (names in that order, each value percent-encoded one way; the flag list under the
//! name(s) `upstream.flag_keys_param` picks).

use http::{HeaderMap, Method};

use super::{
    BypassReason, Decision, Limits, QueryWriter, Rejection, flag_set, known_params, nonempty,
    read_only_head, user,
};
use crate::config::FlagKeysParam;
use crate::key::RouteFamily;

/// The path evalgate caches in this family.
pub const V1_VARDATA: &str = "/v1/vardata";

/// Normalizes a `/v1/vardata` request.
pub fn v1_vardata(
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    limits: &Limits,
) -> Decision {
    let keyed = match read_only_head(method, headers, limits.tracking) {
        Ok(h) => h,
        Err(reason) => return Decision::Bypass(reason),
    };
    let [user_id, device_id, context, flag_key, flag_keys] = match known_params(
        query,
        ["user_id", "device_id", "context", "flag_key", "flag_keys"],
    ) {
        Ok(p) => p,
        Err(reason) => return Decision::Bypass(reason),
    };

    // An empty `context` is not `{}`: it is invalid JSON, for the upstream to judge.
    let context = match context.as_deref() {
        None => None,
        Some(c) if c.len() > limits.max_context_bytes => {
            return Decision::Reject(Rejection::ContextTooLong);
        }
        Some(c) => match user::canonical_user(c) {
            Ok(canonical) => canonical,
            Err(_) => return Decision::Bypass(BypassReason::InvalidContext),
        },
    };
    let flags = flag_set([flag_key.as_deref(), flag_keys.as_deref()]);

    let mut pq = String::with_capacity(64 + context.as_ref().map_or(0, |c| c.len() * 2));
    pq.push_str(V1_VARDATA);
    let mut q = QueryWriter(&mut pq, '?');
    if let Some(c) = &context {
        q.param("context", [c.as_str()]);
    }
    if let Some(d) = nonempty(&device_id) {
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
    if let Some(u) = nonempty(&user_id) {
        q.param("user_id", [u]);
    }
    Decision::Cache(keyed.get_key(RouteFamily::V1Vardata, pq))
}

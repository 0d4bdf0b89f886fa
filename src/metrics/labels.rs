//! The label values of every labelled metric, all known up front (so series never grow
//! with traffic), and the registration helper that creates each label set at start.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use crate::key::RouteFamily;
use crate::response::CacheStatus;

/// `route` label values: every [`RouteFamily`], then `other` for uncached paths.
pub(super) const ROUTES: [&str; 6] = [
    "v1_vardata",
    "sdk_v2_vardata",
    "sdk_vardata",
    "sdk_v2_flags",
    "v1_flags",
    "other",
];
/// `cache` label values; `NONE` for answers made before any lookup (431, 414, 405, and
/// `OPTIONS` on the cacheable routes).
pub(super) const CACHE: [&str; 5] = ["HIT", "STALE", "MISS", "BYPASS", "NONE"];
/// `class` label values.
pub(super) const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// `outcome` label values of upstream exchanges.
pub(super) const OUTCOMES: [&str; 8] = [
    "1xx", "2xx", "3xx", "4xx", "5xx", "connect", "timeout", "invalid",
];
/// `cause` label values of cache removals, in [`crate::cache::CacheCounts::removed`] order.
pub const REMOVAL_CAUSES: [&str; 4] = ["size", "expired", "explicit", "replaced"];
pub(super) const PURGE_SCOPES: [&str; 2] = ["all", "deployment"];
pub(super) const POLL_RESULTS: [&str; 2] = ["ok", "error"];
/// `reason` label values of request header fields not forwarded.
pub(super) const DROP_REASONS: [&str; 1] = ["underscore"];

/// `outcome` label values of fills nobody waited for.
pub(super) const ABANDONED_OUTCOMES: [&str; 3] = ["finished", "cancelled", "skipped"];

pub(super) type Labels = Vec<(&'static str, &'static str)>;

/// Registers a family with every label set in `sets` created up front; returns their
/// handles in the same order.
pub(super) fn family<const N: usize>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    sets: [Labels; N],
) -> [Counter; N] {
    let family = Family::<Labels, Counter>::default();
    registry.register(name, help, family.clone());
    sets.map(|labels| family.get_or_create_owned(&labels))
}

pub(super) fn one_label<const N: usize>(
    name: &'static str,
    values: [&'static str; N],
) -> [Labels; N] {
    values.map(|v| vec![(name, v)])
}

pub(super) fn route_index(route: Option<RouteFamily>) -> usize {
    match route {
        Some(RouteFamily::V1Vardata) => 0,
        Some(RouteFamily::SdkV2Vardata) => 1,
        Some(RouteFamily::SdkVardata) => 2,
        Some(RouteFamily::SdkV2Flags) => 3,
        Some(RouteFamily::V1Flags) => 4,
        None => 5,
    }
}

pub(super) fn cache_index(cache: Option<CacheStatus>) -> usize {
    match cache {
        Some(CacheStatus::Hit) => 0,
        Some(CacheStatus::Stale) => 1,
        Some(CacheStatus::Miss) => 2,
        Some(CacheStatus::Bypass) => 3,
        None => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_match_the_families() {
        for family in [
            RouteFamily::V1Vardata,
            RouteFamily::SdkV2Vardata,
            RouteFamily::SdkVardata,
            RouteFamily::SdkV2Flags,
            RouteFamily::V1Flags,
        ] {
            assert_eq!(ROUTES[route_index(Some(family))], family.as_str());
        }
        for cache in [
            CacheStatus::Hit,
            CacheStatus::Stale,
            CacheStatus::Miss,
            CacheStatus::Bypass,
        ] {
            assert_eq!(CACHE[cache_index(Some(cache))], cache.as_str());
        }
    }
}

//! Freshness policy: how long an upstream answer may be served, from its `Cache-Control`
//! and the configured TTLs. Pure: no I/O, no clocks.

use std::time::Duration;

use http::HeaderMap;
use http::header::CACHE_CONTROL;

/// Whether and for how long to store an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Do not store (`no-store`, `private`, `no-cache`, or a zero lifetime).
    NoStore,
    /// Fresh for this long from the fetch.
    FreshFor(Duration),
}

/// The lifetime of an upstream 200.
///
/// Unless `ignore_cache_control`: `no-store`, `private` and `no-cache` mean don't store
/// (evalgate does not revalidate); `s-maxage` (a shared cache's own lifetime) wins over
/// `max-age`; either is capped at `max_ttl`. Without them, or when ignoring them,
/// `default_ttl`.
pub fn storage(
    headers: &HeaderMap,
    default_ttl: Duration,
    max_ttl: Duration,
    ignore_cache_control: bool,
) -> Storage {
    if ignore_cache_control {
        return Storage::FreshFor(default_ttl);
    }
    let mut max_age = None;
    let mut s_maxage = None;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            match name.to_ascii_lowercase().as_str() {
                "no-store" | "private" | "no-cache" => return Storage::NoStore,
                "max-age" => max_age = arg.and_then(|a| a.parse::<u64>().ok()).or(max_age),
                "s-maxage" => s_maxage = arg.and_then(|a| a.parse::<u64>().ok()).or(s_maxage),
                _ => {}
            }
        }
    }
    match s_maxage.or(max_age) {
        Some(0) => Storage::NoStore,
        Some(secs) => Storage::FreshFor(Duration::from_secs(secs).min(max_ttl)),
        None => Storage::FreshFor(default_ttl),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(3600);

    fn with(cc: &[&str]) -> Storage {
        let mut h = HeaderMap::new();
        for v in cc {
            h.append(CACHE_CONTROL, v.parse().unwrap());
        }
        storage(&h, DEFAULT, MAX, false)
    }

    #[test]
    fn no_header_uses_the_default() {
        assert_eq!(with(&[]), Storage::FreshFor(DEFAULT));
    }

    #[test]
    fn no_store_private_and_no_cache_are_not_stored() {
        assert_eq!(with(&["no-store"]), Storage::NoStore);
        assert_eq!(with(&["public, PRIVATE"]), Storage::NoStore);
        assert_eq!(with(&["max-age=60, no-cache"]), Storage::NoStore);
        assert_eq!(with(&["max-age=0"]), Storage::NoStore);
    }

    #[test]
    fn max_age_is_honoured_and_capped() {
        assert_eq!(
            with(&["max-age=120"]),
            Storage::FreshFor(Duration::from_secs(120))
        );
        assert_eq!(
            with(&["max-age=\"30\""]),
            Storage::FreshFor(Duration::from_secs(30))
        );
        assert_eq!(with(&["max-age=999999"]), Storage::FreshFor(MAX));
    }

    #[test]
    fn s_maxage_wins_over_max_age() {
        assert_eq!(
            with(&["max-age=10, s-maxage=90"]),
            Storage::FreshFor(Duration::from_secs(90))
        );
        assert_eq!(
            with(&["s-maxage=90", "max-age=10"]),
            Storage::FreshFor(Duration::from_secs(90))
        );
    }

    #[test]
    fn unparsable_values_fall_back() {
        assert_eq!(with(&["max-age=soon"]), Storage::FreshFor(DEFAULT));
    }

    #[test]
    fn ignoring_cache_control_uses_the_default() {
        let mut h = HeaderMap::new();
        h.insert(CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(storage(&h, DEFAULT, MAX, true), Storage::FreshFor(DEFAULT));
    }
}

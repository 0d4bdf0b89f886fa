//! `/v1/vardata`: query decoding and normalization.
//!
//! Input: optional `name: value` header lines, then the query string on the last line
//! (bytes that are not UTF-8 are replaced). Without an `authorization` line the request
//! carries `Api-Key k`. For each `upstream.flag_keys_param`:
//! - normalization never panics (with the default context limit and a tiny one);
//! - a request that gets a cache key: the key's path and query is ASCII, its upstream
//!   request builds, and the canonical request the key stands for (its own query, its
//!   `Api-Key`, its track) normalizes to the same key: normalization is idempotent.

#![no_main]

use evalgate::config::FlagKeysParam;
use evalgate::normalize::{Decision, Limits, v1_vardata};
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use libfuzzer_sys::fuzz_target;

const MODES: [FlagKeysParam; 3] = [
    FlagKeysParam::Both,
    FlagKeysParam::FlagKey,
    FlagKeysParam::FlagKeys,
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (head, query) = match text.rsplit_once('\n') {
        Some((head, query)) => (head, query),
        None => ("", &*text),
    };
    let headers = headers(head);
    for method in [Method::GET, Method::HEAD, Method::POST] {
        for mode in MODES {
            let tiny = Limits {
                max_context_bytes: 16,
                flag_keys_param: mode,
                tracking: evalgate::config::Tracking::Passthrough,
            };
            let _ = v1_vardata(&method, Some(query), &headers, &tiny);
            if let Decision::Cache(key) = v1_vardata(&method, Some(query), &headers, &limits(mode))
            {
                check_fixed_point(&key, mode, query);
            }
        }
    }
});

fn limits(mode: FlagKeysParam) -> Limits {
    Limits {
        max_context_bytes: 8192,
        flag_keys_param: mode,
        tracking: evalgate::config::Tracking::Passthrough,
    }
}

fn headers(head: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_bytes(value.trim_start().as_bytes()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    if !headers.contains_key(header::AUTHORIZATION) {
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Api-Key k"));
    }
    headers
}

/// The request a key stands for, normalized again, is the same key.
fn check_fixed_point(key: &evalgate::CacheKey, mode: FlagKeysParam, query: &str) {
    assert!(key.path_and_query().is_ascii(), "{key:?}");
    assert!(
        key.upstream_request("http://upstream.test").is_ok(),
        "{key:?} builds no upstream request"
    );
    let mut headers = HeaderMap::new();
    let auth = format!("Api-Key {}", key.deployment());
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::try_from(auth).expect("a keyed deployment is a header value"),
    );
    if let Some(track) = key.track() {
        headers.insert(
            "x-amp-exp-track",
            HeaderValue::try_from(track).expect("a keyed track is a header value"),
        );
    }
    let path_and_query = key.path_and_query();
    let canonical = path_and_query.split_once('?').map(|(_, q)| q);
    match v1_vardata(&Method::GET, canonical, &headers, &limits(mode)) {
        Decision::Cache(again) => assert!(
            again == *key,
            "{query:?} gave {key:?}, which re-normalizes to {again:?}"
        ),
        other => panic!("{query:?} gave {key:?}, which re-normalizes to {other:?}"),
    }
}

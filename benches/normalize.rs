//! Normalization of `GET /v1/vardata` request heads: query decoding, user JSON
//! canonicalization and cache-key building, with no I/O.
//!
//! `cargo bench --bench normalize`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use evalgate::config::FlagKeysParam;
use evalgate::normalize::{self, Decision, Limits};
use http::{HeaderMap, HeaderValue, Method, header};

/// A typical user context (~200 bytes), compact, as an SDK serializes it.
const CONTEXT: &str = r#"{"user_id":"user-48213","device_id":"dev-7f3a9c2e","user_properties":{"plan":"enterprise","country":"DE","signup_year":2021,"beta_tester":true,"segments":["alpha","power user"],"referrer":"newsletter"}}"#;

/// The same user, pretty-printed with members in another order (compared by name, so
/// it normalizes to the same key).
const CONTEXT_PRETTY: &str = r#"{
  "user_properties": {
    "segments": ["alpha", "power user"],
    "referrer": "newsletter",
    "beta_tester": true,
    "country": "DE",
    "signup_year": 2021,
    "plan": "enterprise"
  },
  "device_id": "dev-7f3a9c2e",
  "user_id": "user-48213"
}"#;

/// Percent-encodes like JavaScript's `encodeURIComponent` (what a browser SDK sends).
fn encode_uri_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Form encoding as `URLSearchParams` does it: spaces become `+`.
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"*-._".contains(&b) {
            out.push(b as char);
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Api-Key server-Xq4bN0sY7pLr2mKd9TfW3hJc6vAe1uGz"),
    );
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    headers.insert(
        header::USER_AGENT,
        HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64) Chrome/124.0"),
    );
    headers
}

fn cache_key(decision: Decision) -> evalgate::CacheKey {
    match decision {
        Decision::Cache(key) => key,
        other => panic!("expected a cacheable request, got {other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    let limits = Limits {
        max_context_bytes: 8 * 1024,
        flag_keys_param: FlagKeysParam::Both,
        tracking: evalgate::config::Tracking::Passthrough,
    };
    let headers = headers();
    let method = Method::GET;

    let typical = format!(
        "user_id=user-48213&device_id=dev-7f3a9c2e&flag_key=a,b&context={}",
        encode_uri_component(CONTEXT)
    );
    let pretty = format!(
        "flag_key=b,a&context={}&device_id=dev-7f3a9c2e&user_id=user-48213",
        form_encode(CONTEXT_PRETTY)
    );
    let no_context = "user_id=user-48213&device_id=dev-7f3a9c2e&flag_key=a,b".to_string();

    // Outside the timed loops: every case is cacheable, and the two context spellings
    // land on the same key.
    assert!(
        (180..=240).contains(&CONTEXT.len()),
        "context is {} bytes",
        CONTEXT.len()
    );
    assert!(pretty.contains('+'), "the pretty query uses `+` for spaces");
    let k_typical = cache_key(normalize::v1_vardata(
        &method,
        Some(&typical),
        &headers,
        &limits,
    ));
    let k_pretty = cache_key(normalize::v1_vardata(
        &method,
        Some(&pretty),
        &headers,
        &limits,
    ));
    assert!(
        k_typical == k_pretty,
        "reordered context must normalize to the same key:\n{}\n{}",
        k_typical.path_and_query(),
        k_pretty.path_and_query()
    );
    cache_key(normalize::v1_vardata(
        &method,
        Some(&no_context),
        &headers,
        &limits,
    ));

    let mut group = c.benchmark_group("normalize/v1_vardata");
    for (name, query) in [
        ("typical", &typical),
        ("pretty_reordered", &pretty),
        ("no_context", &no_context),
    ] {
        group.throughput(Throughput::Bytes(query.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                normalize::v1_vardata(
                    black_box(&method),
                    black_box(Some(query.as_str())),
                    black_box(&headers),
                    black_box(&limits),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

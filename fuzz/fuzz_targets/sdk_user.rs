//! SDK users: `X-Amp-Exp-User` in any of the four base64 flavours, and the JSON body.
//!
//! Input: the user's bytes (JSON, or anything). Properties:
//! - each flavour (standard/URL-safe, padded/unpadded) decodes back to the input;
//! - a GET carrying the input in any flavour and a POST carrying it as the body get the
//!   same decision (one key, or the same bypass), unless the input is only whitespace
//!   (an empty POST body is "no user"; an empty user header is not);
//! - the input as the header text itself never panics;
//! - every key is a fixed point: the canonical request it stands for (a POST of its
//!   query, body and flag-keys header) normalizes to the same key;
//! - canonicalizing a canonical user gives it back (idempotent).

#![no_main]

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use evalgate::b64;
use evalgate::key::RouteFamily;
use evalgate::normalize::user::canonical_user;
use evalgate::normalize::{Decision, X_AMP_EXP_FLAG_KEYS, X_AMP_EXP_USER, sdk};
use http::{HeaderMap, HeaderValue, Method, header};
use libfuzzer_sys::fuzz_target;

const PASSTHROUGH: evalgate::config::Tracking = evalgate::config::Tracking::Passthrough;

const ROUTES: [RouteFamily; 2] = [RouteFamily::SdkV2Vardata, RouteFamily::SdkVardata];

fuzz_target!(|data: &[u8]| {
    let flavours = [
        STANDARD.encode(data),
        STANDARD_NO_PAD.encode(data),
        URL_SAFE.encode(data),
        URL_SAFE_NO_PAD.encode(data),
    ];
    for text in &flavours {
        assert_eq!(b64::decode(text).as_deref(), Some(data), "{text:?}");
    }

    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(Some(canonical)) = canonical_user(text)
    {
        assert_eq!(
            canonical_user(&canonical),
            Ok(Some(canonical.clone())),
            "{text:?} canonicalizes to {canonical:?}, which is not canonical"
        );
    }

    for route in ROUTES {
        let post = sdk::vardata(route, &Method::POST, None, &auth(), data, PASSTHROUGH);
        check_fixed_point(&post, data);
        let whitespace = data.iter().all(u8::is_ascii_whitespace);
        for text in &flavours {
            let get = sdk::vardata(
                route,
                &Method::GET,
                None,
                &with_user(text.as_bytes()),
                &[],
                PASSTHROUGH,
            );
            check_fixed_point(&get, data);
            if !whitespace {
                assert_same(&post, &get, text);
            }
        }
        if HeaderValue::from_bytes(data).is_ok() {
            let get = sdk::vardata(
                route,
                &Method::GET,
                None,
                &with_user(data),
                &[],
                PASSTHROUGH,
            );
            check_fixed_point(&get, data);
        }
    }
});

fn auth() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Api-Key k"));
    headers
}

fn with_user(value: &[u8]) -> HeaderMap {
    let mut headers = auth();
    headers.insert(
        &X_AMP_EXP_USER,
        HeaderValue::from_bytes(value).expect("a header value"),
    );
    headers
}

fn assert_same(post: &Decision, get: &Decision, header: &str) {
    match (post, get) {
        (Decision::Cache(a), Decision::Cache(b)) => assert!(a == b, "{a:?} != {b:?}"),
        (Decision::Bypass(a), Decision::Bypass(b)) => assert_eq!(a, b),
        _ => panic!("POST gave {post:?}, GET with {header:?} gave {get:?}"),
    }
}

/// The canonical request a key stands for, normalized again, is the same key.
fn check_fixed_point(decision: &Decision, input: &[u8]) {
    let Decision::Cache(key) = decision else {
        return;
    };
    assert!(key.path_and_query().is_ascii(), "{key:?}");
    assert!(
        key.upstream_request("http://upstream.test").is_ok(),
        "{key:?} builds no upstream request"
    );
    let body = key.body().expect("an SDK key is a POST");
    let mut headers = HeaderMap::new();
    let auth = format!("Api-Key {}", key.deployment());
    headers.insert(header::AUTHORIZATION, HeaderValue::try_from(auth).unwrap());
    if let Some(track) = key.track() {
        headers.insert("x-amp-exp-track", HeaderValue::try_from(track).unwrap());
    }
    if let Some(keys) = key.flag_keys_header() {
        headers.insert(&X_AMP_EXP_FLAG_KEYS, HeaderValue::try_from(keys).unwrap());
    }
    let path_and_query = key.path_and_query();
    let query = path_and_query.split_once('?').map(|(_, q)| q);
    match sdk::vardata(
        key.route(),
        &Method::POST,
        query,
        &headers,
        body.as_bytes(),
        PASSTHROUGH,
    ) {
        Decision::Cache(again) => assert!(
            again == *key,
            "{input:?} gave {key:?}, which re-normalizes to {again:?}"
        ),
        other => panic!("{input:?} gave {key:?}, which re-normalizes to {other:?}"),
    }
}

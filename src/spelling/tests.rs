//! The memo gives back exactly the key normalization gives, and only for the exact
//! spelling (query, keyed headers, limits) it was given.

use http::Method;
use proptest::prelude::*;

use super::*;
use crate::config::FlagKeysParam;
use crate::normalize::tests::{headers, limits};
use crate::normalize::{Decision, v1_vardata};

const QUERY: &str = "user_id=u1&device_id=d1&flag_key=b,a&context=%7B%22country%22%3A%22DE%22%7D";

fn auth() -> HeaderMap {
    headers(&[("authorization", "Api-Key k1")])
}

#[track_caller]
fn key_of(query: Option<&str>, h: &HeaderMap, limits: &Limits) -> CacheKey {
    match v1_vardata(&Method::GET, query, h, limits) {
        Decision::Cache(key) => key,
        other => panic!("expected a key, got {other:?}"),
    }
}

/// Remembers the key of this spelling, as the gateway does after a hit.
fn remember(memo: &SpellingMemo, query: Option<&str>, h: &HeaderMap, limits: &Limits) -> CacheKey {
    let key = key_of(query, h, limits);
    memo.remember(query, h, limits, &key);
    key
}

#[test]
fn a_remembered_spelling_gives_back_its_key() {
    let memo = SpellingMemo::new(64, 2048);
    assert!(memo.get(Some(QUERY), &auth(), &limits()).is_none());
    let key = remember(&memo, Some(QUERY), &auth(), &limits());
    let again = memo
        .get(Some(QUERY), &auth(), &limits())
        .expect("remembered");
    assert!(again == key);
    assert_eq!(again.path_and_query(), key.path_and_query());
}

#[test]
fn any_other_spelling_is_not_found() {
    let memo = SpellingMemo::new(1024, 2048);
    let with_track = headers(&[
        ("authorization", "Api-Key k1"),
        ("x-amp-exp-track", "track"),
    ]);
    remember(&memo, Some(QUERY), &auth(), &limits());
    remember(&memo, Some(QUERY), &with_track, &limits());

    let other_query = QUERY.replace("u1", "u2");
    let reordered = "device_id=d1&user_id=u1&flag_key=b,a&context=%7B%22country%22%3A%22DE%22%7D";
    let misses: Vec<(Option<&str>, HeaderMap, Limits)> = vec![
        // Another query, even one that normalizes to the same key.
        (Some(&other_query), auth(), limits()),
        (Some(reordered), auth(), limits()),
        (None, auth(), limits()),
        (Some(""), auth(), limits()),
        // Another key, or the same key spelled differently.
        (
            Some(QUERY),
            headers(&[("authorization", "Api-Key k2")]),
            limits(),
        ),
        (
            Some(QUERY),
            headers(&[("authorization", "api-key k1")]),
            limits(),
        ),
        (Some(QUERY), HeaderMap::new(), limits()),
        // The header repeated, another track value, exposure tracking.
        (
            Some(QUERY),
            headers(&[
                ("authorization", "Api-Key k1"),
                ("authorization", "Api-Key k1"),
            ]),
            limits(),
        ),
        (
            Some(QUERY),
            headers(&[
                ("authorization", "Api-Key k1"),
                ("x-amp-exp-track", "no-track"),
            ]),
            limits(),
        ),
        (
            Some(QUERY),
            headers(&[
                ("authorization", "Api-Key k1"),
                ("x-amp-exp-exposure-track", "track"),
            ]),
            limits(),
        ),
        // Other limits: a lower context bound may turn the request away.
        (
            Some(QUERY),
            auth(),
            Limits {
                max_context_bytes: 4,
                ..limits()
            },
        ),
        (
            Some(QUERY),
            auth(),
            Limits {
                flag_keys_param: FlagKeysParam::FlagKeys,
                ..limits()
            },
        ),
        // `upstream.tracking = "never"` keys the same spelling with no-track headers.
        (
            Some(QUERY),
            auth(),
            Limits {
                tracking: crate::config::Tracking::Never,
                ..limits()
            },
        ),
    ];
    for (query, h, l) in &misses {
        assert!(
            memo.get(*query, h, l).is_none(),
            "found for {query:?} {h:?} {l:?}"
        );
    }
    // Both remembered spellings are still there, each with its own key.
    let plain = memo.get(Some(QUERY), &auth(), &limits()).unwrap();
    let tracked = memo.get(Some(QUERY), &with_track, &limits()).unwrap();
    assert!(plain != tracked);
    assert_eq!(tracked.track(), Some("track"));
}

#[test]
fn a_value_never_passes_for_the_same_value_under_another_header() {
    let memo = SpellingMemo::new(64, 2048);
    let tracked = headers(&[
        ("authorization", "Api-Key k1"),
        ("x-amp-exp-track", "track"),
    ]);
    remember(&memo, Some(QUERY), &tracked, &limits());
    let moved = headers(&[
        ("authorization", "Api-Key k1"),
        ("x-amp-exp-exposure-track", "track"),
    ]);
    assert!(memo.get(Some(QUERY), &moved, &limits()).is_none());
    // No query and an empty one are kept apart too.
    remember(&memo, None, &auth(), &limits());
    assert!(memo.get(None, &auth(), &limits()).is_some());
    assert!(memo.get(Some(""), &auth(), &limits()).is_none());
}

#[test]
fn a_key_too_large_to_keep_is_not_remembered() {
    // The spelling fits in 256 bytes, but not together with the key it normalizes to.
    let memo = SpellingMemo::new(64, 256);
    let long = format!("user_id={}", "u".repeat(100));
    remember(&memo, Some(&long), &auth(), &limits());
    assert!(memo.get(Some(&long), &auth(), &limits()).is_none());
    remember(&memo, Some("user_id=u"), &auth(), &limits());
    assert!(memo.get(Some("user_id=u"), &auth(), &limits()).is_some());
}

#[test]
fn headers_the_key_does_not_read_do_not_matter() {
    let memo = SpellingMemo::new(64, 2048);
    let key = remember(&memo, Some(QUERY), &auth(), &limits());
    let noisy = headers(&[
        ("authorization", "Api-Key k1"),
        ("user-agent", "curl/8"),
        ("cookie", "a=b"),
    ]);
    assert!(memo.get(Some(QUERY), &noisy, &limits()).unwrap() == key);
}

#[test]
fn bounds_hold() {
    // Off.
    let off = SpellingMemo::new(0, 2048);
    remember(&off, Some(QUERY), &auth(), &limits());
    assert!(off.get(Some(QUERY), &auth(), &limits()).is_none());
    // Too long to remember.
    let short = SpellingMemo::new(64, 64);
    remember(&short, Some(QUERY), &auth(), &limits());
    assert!(short.get(Some(QUERY), &auth(), &limits()).is_none());
    // One set of four: the fifth spelling pushes out the oldest.
    let one = SpellingMemo::new(1, 2048);
    let queries: Vec<String> = (0..5).map(|i| format!("user_id=u{i}")).collect();
    for q in &queries {
        remember(&one, Some(q), &auth(), &limits());
    }
    assert!(one.get(Some(&queries[0]), &auth(), &limits()).is_none());
    for q in &queries[1..] {
        assert!(one.get(Some(q), &auth(), &limits()).is_some(), "{q}");
    }
    // Remembering a spelling again does not take a second way.
    remember(&one, Some(&queries[4]), &auth(), &limits());
    assert!(one.get(Some(&queries[1]), &auth(), &limits()).is_some());
}

proptest! {
    /// Whatever was remembered, a lookup answers the key normalization gives for that
    /// exact spelling (query or none, repeated and missing headers, other limits), or
    /// nothing.
    #[test]
    fn the_memo_agrees_with_normalization(
        spellings in prop::collection::vec(
            (
                prop::option::of("[a-z0-9=&%,+]{0,40}"),
                prop::collection::vec(
                    prop::sample::select(vec!["Api-Key k1", "Api-Key k2", "api-key k1", "Bearer x"]),
                    0..3,
                ),
                prop::option::of(prop::sample::select(vec!["track", "no-track", "x"])),
                prop::option::of(prop::sample::select(vec!["no-track", "track"])),
                prop::sample::select(vec![4usize, 64, 8192]),
            ),
            1..40,
        ),
        entries in 1usize..12,
    ) {
        let memo = SpellingMemo::new(entries, 2048);
        let requests: Vec<(Option<String>, HeaderMap, Limits)> = spellings
            .iter()
            .map(|(q, auths, t, e, max)| {
                let mut pairs: Vec<(&str, &str)> =
                    auths.iter().map(|a| ("authorization", *a)).collect();
                if let Some(t) = t {
                    pairs.push(("x-amp-exp-track", *t));
                }
                if let Some(e) = e {
                    pairs.push(("x-amp-exp-exposure-track", *e));
                }
                let l = Limits { max_context_bytes: *max, ..limits() };
                (q.clone(), headers(&pairs), l)
            })
            .collect();
        let mut remembered = 0;
        for (q, h, l) in &requests {
            if let Decision::Cache(key) = v1_vardata(&Method::GET, q.as_deref(), h, l) {
                memo.remember(q.as_deref(), h, l, &key);
                remembered += 1;
            }
        }
        let mut found = 0;
        for (q, h, l) in &requests {
            if let Some(got) = memo.get(q.as_deref(), h, l) {
                found += 1;
                let want = key_of(q.as_deref(), h, l);
                prop_assert!(got == want);
                prop_assert_eq!(got.path_and_query(), want.path_and_query());
                prop_assert_eq!(got.deployment(), want.deployment());
                prop_assert_eq!(got.track(), want.track());
            }
        }
        prop_assert!(found <= requests.len() && (remembered == 0) == (found == 0));
    }
}

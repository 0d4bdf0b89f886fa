use proptest::prelude::*;

use super::{CacheKey, CanonicalRequest, RouteFamily};

#[test]
fn all_lists_every_family_once() {
    for (at, family) in RouteFamily::ALL.into_iter().enumerate() {
        // Exhaustive: a new family does not compile here until it is placed in `ALL`.
        let expected = match family {
            RouteFamily::V1Vardata => 0,
            RouteFamily::SdkV2Vardata => 1,
            RouteFamily::SdkVardata => 2,
            RouteFamily::SdkV2Flags => 3,
            RouteFamily::V1Flags => 4,
        };
        assert_eq!(at, expected, "{family:?}");
    }
}

fn request() -> impl Strategy<Value = CanonicalRequest> {
    let text = || "[ -~é\u{1F600}]{0,300}";
    let pq = prop_oneof![
        // What normalization writes (packed) and anything else (kept as it is).
        any::<String>().prop_map(|v| {
            let mut pq = String::from("/v1/vardata?context=");
            crate::normalize::form::encode_into(&mut pq, &v);
            pq
        }),
        text(),
    ];
    (
        0..RouteFamily::ALL.len(),
        text(),
        proptest::option::of(text()),
        proptest::option::of(text()),
        pq,
        proptest::option::of(text()),
        proptest::option::of(text()),
    )
        .prop_map(
            |(route, deployment, track, exposure_track, path_and_query, keys, body)| {
                CanonicalRequest {
                    route: RouteFamily::ALL[route],
                    deployment,
                    track,
                    exposure_track,
                    path_and_query,
                    flag_keys_header: keys,
                    body,
                }
            },
        )
}

fn fields_of(key: &CacheKey) -> CanonicalRequest {
    CanonicalRequest {
        route: key.route(),
        deployment: key.deployment().into(),
        track: key.track().map(Into::into),
        exposure_track: key.exposure_track().map(Into::into),
        path_and_query: key.path_and_query().into_owned(),
        flag_keys_header: key.flag_keys_header().map(Into::into),
        body: key.body().map(Into::into),
    }
}

proptest! {
    /// Every field comes back from the key's one allocation as it went in.
    #[test]
    fn a_key_gives_back_its_canonical_request(parts in request()) {
        let key = CacheKey::from(parts.clone());
        prop_assert_eq!(fields_of(&key), parts);
    }

    /// Keys are equal (and hash alike) exactly when their canonical requests are.
    #[test]
    fn keys_are_equal_exactly_when_requests_are(a in request(), b in request()) {
        let (ka, kb) = (CacheKey::from(a.clone()), CacheKey::from(b.clone()));
        prop_assert_eq!(ka == kb, a == b);
        prop_assert_eq!(ka == CacheKey::from(a.clone()), true);
        prop_assert_eq!(ka.hash_value(), CacheKey::from(a).hash_value());
    }

    /// Moving one field's bytes into the next never gives an equal key.
    #[test]
    fn field_boundaries_are_part_of_the_key(s in "[a-z]{2,20}", cut in 1usize..20) {
        let cut = cut.min(s.len() - 1);
        let base = |track: &str, exposure: &str| CanonicalRequest {
            route: RouteFamily::V1Vardata,
            deployment: "k".into(),
            track: Some(track.into()),
            exposure_track: Some(exposure.into()),
            path_and_query: "/v1/vardata".into(),
            flag_keys_header: None,
            body: None,
        };
        let (l, r) = s.split_at(cut);
        prop_assert!(CacheKey::from(base(l, r)) != CacheKey::from(base(&s, "")));
    }
}

#[test]
fn a_typical_key_is_smaller_than_its_request() {
    let mut pq = String::from("/v1/vardata?context=");
    crate::normalize::form::encode_into(
        &mut pq,
        r#"{"app_version":"5.12.0","country":"US","language":"en-US","os":"iOS 17.5","platform":"iOS","plan":"enterprise","cohort":"beta-testers-2026"}"#,
    );
    pq.push_str("&device_id=d-7f3a9c&user_id=user-0012345");
    let key = CacheKey::new(
        RouteFamily::V1Vardata,
        "client-4f1c2d3e5a6b7c8d9e0f1a2b3c4d5e6f",
        None,
        pq.clone(),
    );
    assert_eq!(key.path_and_query(), pq);
    assert_eq!(key.canonical_len(), pq.len() + 39);
    assert!(
        key.heap_bytes() < key.canonical_len(),
        "{} vs {}",
        key.heap_bytes(),
        key.canonical_len()
    );
    let head = key
        .upstream_head("", &http::HeaderValue::from_static("up"))
        .expect("a GET head");
    let head = String::from_utf8(head).expect("ASCII");
    assert!(
        head.starts_with(&format!("GET {pq} HTTP/1.1\r\n")),
        "{head}"
    );
}

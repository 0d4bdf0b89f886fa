//! Unit tests: JSON string escapes never split a key. Every spelling of one string, in a
//! member name or a value, at any depth, gives one key, for `context` on `/v1/vardata` and
//! for SDK users (base64 header and JSON body).

use http::Method;

use super::tests::{headers, limits};
use super::*;
use crate::b64;
use crate::key::CacheKey;

const AUTH: (&str, &str) = ("authorization", "Api-Key deployment-key-1");

/// How a user JSON travels: each must give the same canonical user.
#[derive(Debug, Clone, Copy)]
enum Carrier {
    Context,
    SdkHeader,
    SdkBody,
}

const CARRIERS: [Carrier; 3] = [Carrier::Context, Carrier::SdkHeader, Carrier::SdkBody];

fn decide(carrier: Carrier, user: &str) -> Decision {
    match carrier {
        Carrier::Context => {
            let mut q = String::from("context=");
            form::encode_into(&mut q, user);
            v1_vardata(&Method::GET, Some(&q), &headers(&[AUTH]), &limits())
        }
        Carrier::SdkHeader => {
            let h = headers(&[AUTH, ("x-amp-exp-user", &b64::encode_url(user.as_bytes()))]);
            sdk::vardata(
                RouteFamily::SdkV2Vardata,
                &Method::GET,
                None,
                &h,
                b"",
                Tracking::Passthrough,
            )
        }
        Carrier::SdkBody => sdk::vardata(
            RouteFamily::SdkV2Vardata,
            &Method::POST,
            None,
            &headers(&[AUTH]),
            user.as_bytes(),
            Tracking::Passthrough,
        ),
    }
}

#[track_caller]
fn key(carrier: Carrier, user: &str) -> CacheKey {
    match decide(carrier, user) {
        Decision::Cache(k) => k,
        other => panic!("{carrier:?} {user}: expected a key, got {other:?}"),
    }
}

/// The canonical user JSON a key carries.
fn user_of(carrier: Carrier, k: &CacheKey) -> String {
    match carrier {
        Carrier::Context => {
            let pq = k.path_and_query();
            let query = pq.split_once('?').unwrap().1;
            let value = query.strip_prefix("context=").unwrap();
            form::decode(value).unwrap().into_owned()
        }
        Carrier::SdkHeader | Carrier::SdkBody => k.body().unwrap().to_owned(),
    }
}

/// Every spelling gives one key, whose user is `canonical`, and `canonical` is a fixed point.
#[track_caller]
fn assert_one_key(spellings: &[&str], canonical: &str) {
    for carrier in CARRIERS {
        let first = key(carrier, canonical);
        assert_eq!(user_of(carrier, &first), canonical, "{carrier:?}");
        for s in spellings {
            assert_eq!(key(carrier, s), first, "{carrier:?}: {s} vs {canonical}");
        }
    }
}

#[test]
fn unicode_escapes_of_ascii_are_the_character() {
    assert_one_key(
        &[
            r#"{"user_properties":{"plan":"\u0070ro"}}"#,
            r#"{"user_properties":{"plan":"\u0070\u0072\u006F"}}"#,
        ],
        r#"{"user_properties":{"plan":"pro"}}"#,
    );
    assert_one_key(&[r#"{"user_id":"\u0041"}"#], r#"{"user_id":"A"}"#);
}

#[test]
fn escaped_solidus_is_the_solidus() {
    assert_one_key(
        &[
            r#"{"user_properties":{"url":"https:\/\/x.example\/a"}}"#,
            r#"{"user_properties":{"url":"https:\u002F/x.example\u002fa"}}"#,
        ],
        r#"{"user_properties":{"url":"https://x.example/a"}}"#,
    );
}

#[test]
fn escaped_non_ascii_is_raw_utf8() {
    // Python's json.dumps writes the first, JavaScript's JSON.stringify the last.
    assert_one_key(
        &[
            r#"{"user_properties":{"city":"Z\u00fcrich","name":"Ren\u00E9"}}"#,
            r#"{"user_properties":{"city":"Z\u00fcrich","name":"René"}}"#,
        ],
        r#"{"user_properties":{"city":"Zürich","name":"René"}}"#,
    );
}

#[test]
fn surrogate_pairs_are_the_character() {
    assert_one_key(
        &[
            r#"{"user_properties":{"mood":"\ud83d\ude00"}}"#,
            r#"{"user_properties":{"mood":"\uD83D\uDE00"}}"#,
        ],
        r#"{"user_properties":{"mood":"😀"}}"#,
    );
}

#[test]
fn quotes_and_backslashes_stay_escaped() {
    assert_one_key(
        &[r#"{"user_properties":{"q":"\u0022a\u005cb\u005C"}}"#],
        r#"{"user_properties":{"q":"\"a\\b\\"}}"#,
    );
}

#[test]
fn control_characters_take_one_escape_each() {
    assert_one_key(
        &[r#"{"user_properties":{"c":"\u0009\u000A\u000d\u0008\u000C\u0001\u001F"}}"#],
        r#"{"user_properties":{"c":"\t\n\r\b\f\u0001\u001f"}}"#,
    );
}

#[test]
fn escaped_member_names_at_every_level() {
    // The user object itself, and user_properties: sorted by the decoded name.
    assert_one_key(
        &[
            r#"{"\u0075ser_id":"u","user_properties":{"\u00e9":1,"\u0062":2,"a":3}}"#,
            r#"{"user_properties":{"b":2,"é":1,"a":3},"user_id":"u"}"#,
        ],
        r#"{"user_id":"u","user_properties":{"a":3,"b":2,"é":1}}"#,
    );
    // groups and group_properties, each level.
    assert_one_key(
        &[
            r#"{"group\u0073":{"\u006frg":["\u0061cme"]},"group_properties":{"\u006frg":{"\u0061cme":{"\u0070lan":"\u0070ro"}}}}"#,
        ],
        r#"{"group_properties":{"org":{"acme":{"plan":"pro"}}},"groups":{"org":["acme"]}}"#,
    );
    // Inside object-valued properties, at any depth: decoded, order kept.
    assert_one_key(
        &[
            r#"{"user_properties":{"o":{"\u007a":{"\/k\u00e9":["\u0076"]},"a":1}}}"#,
            r#"{"user_properties":{"o":{"z":{"\/ké":["v"]},"\u0061":1}}}"#,
        ],
        r#"{"user_properties":{"o":{"z":{"/ké":["v"]},"a":1}}}"#,
    );
    assert_one_key(
        &[r#"{"custom":[{"\u006b":"\u0076"}]}"#],
        r#"{"custom":[{"k":"v"}]}"#,
    );
}

#[test]
fn decoded_names_collide_as_duplicates() {
    for user in [
        r#"{"a":1,"\u0061":2}"#,
        r#"{"user_properties":{"é":1,"\u00e9":1}}"#,
        r#"{"group_properties":{"t":{"n":{"\/":1,"/":2}}}}"#,
    ] {
        for carrier in CARRIERS {
            assert!(
                matches!(decide(carrier, user), Decision::Bypass(_)),
                "{carrier:?}: {user}"
            );
        }
    }
}

#[test]
fn lone_surrogates_are_not_cached() {
    for user in [
        r#"{"\ud800":1}"#,
        r#"{"user_id":"\ud800"}"#,
        r#"{"user_properties":{"s":"\udc00"}}"#,
        r#"{"user_properties":{"s":"\ud83d\u0041"}}"#,
        r#"{"user_properties":{"o":{"\ud83d":1}}}"#,
        r#"{"user_properties":{"l":[["\ude00"]]}}"#,
    ] {
        let [ctx, header, body] = CARRIERS.map(|c| decide(c, user));
        assert!(
            matches!(ctx, Decision::Bypass(BypassReason::InvalidContext)),
            "{user}: {ctx:?}"
        );
        for d in [header, body] {
            assert!(
                matches!(d, Decision::Bypass(BypassReason::InvalidUser)),
                "{user}: {d:?}"
            );
        }
    }
}

#[test]
fn numbers_and_member_order_inside_values_stay_as_sent() {
    for carrier in CARRIERS {
        let a = key(
            carrier,
            r#"{"user_properties":{"o":{"b":1.0,"a":"\u0078"}}}"#,
        );
        let b = key(carrier, r#"{"user_properties":{"o":{"a":"x","b":1.0}}}"#);
        let c = key(carrier, r#"{"user_properties":{"o":{"b":1,"a":"x"}}}"#);
        assert_ne!(a, b, "{carrier:?}");
        assert_ne!(a, c, "{carrier:?}");
        assert_eq!(
            user_of(carrier, &a),
            r#"{"user_properties":{"o":{"b":1.0,"a":"x"}}}"#
        );
    }
}

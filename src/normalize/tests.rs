//! Unit tests for [`v1_vardata`]: what shares a key, what does not, and what bypasses.

use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::*;
use crate::config::FlagKeysParam;
use crate::key::CacheKey;

const KEY: &str = "deployment-key-1";

pub(crate) fn limits() -> Limits {
    limits_with(FlagKeysParam::Both)
}

fn limits_with(flag_keys_param: FlagKeysParam) -> Limits {
    Limits {
        max_context_bytes: 8192,
        flag_keys_param,
        tracking: crate::config::Tracking::Passthrough,
    }
}

/// Headers from `(name, value)` pairs; a name may repeat.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in pairs {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    h
}

fn auth() -> HeaderMap {
    headers(&[("authorization", &format!("Api-Key {KEY}"))])
}

fn decide_with(method: &Method, query: Option<&str>, h: &HeaderMap, l: &Limits) -> Decision {
    v1_vardata(method, query, h, l)
}

fn decide(query: &str) -> Decision {
    decide_with(&Method::GET, Some(query), &auth(), &limits())
}

#[track_caller]
fn expect_key(d: Decision) -> CacheKey {
    match d {
        Decision::Cache(k) => k,
        other => panic!("expected Decision::Cache, got {other:?}"),
    }
}

#[track_caller]
fn expect_bypass(d: Decision, reason: BypassReason) {
    match d {
        Decision::Bypass(r) if r == reason => {}
        other => panic!("expected Decision::Bypass({reason:?}), got {other:?}"),
    }
}

/// The key for a GET with the default `Authorization`.
#[track_caller]
fn key(query: &str) -> CacheKey {
    expect_key(decide(query))
}

#[track_caller]
fn key_with_headers(query: &str, h: &[(&str, &str)]) -> CacheKey {
    expect_key(decide_with(
        &Method::GET,
        Some(query),
        &headers(h),
        &limits(),
    ))
}

#[track_caller]
fn pq(query: &str) -> String {
    key(query).path_and_query().into_owned()
}

/// Asserts that all queries give one key, and that key's path and query is `expected`.
#[track_caller]
fn assert_same(queries: &[&str], expected: &str) {
    let first = key(queries[0]);
    assert_eq!(first.path_and_query(), expected, "query {:?}", queries[0]);
    for q in &queries[1..] {
        let k = key(q);
        assert_eq!(k, first, "query {q:?} vs {:?}", queries[0]);
        assert_eq!(k.path_and_query(), expected, "query {q:?}");
    }
}

#[track_caller]
fn assert_differ(a: &str, b: &str) {
    let (ka, kb) = (key(a), key(b));
    assert_ne!(ka, kb, "{a:?} and {b:?} share a key");
    assert_ne!(ka.path_and_query(), kb.path_and_query());
}

/// `context=<json>`, percent-encoded.
fn ctx(json: &str) -> String {
    let mut q = String::from("context=");
    form::encode_into(&mut q, json);
    q
}

/// The canonical path and query for a given canonical context JSON.
fn ctx_pq(canonical_json: &str) -> String {
    format!("{V1_VARDATA}?{}", ctx(canonical_json))
}

// --- Query decoding -------------------------------------------------------------------

#[test]
fn canonical_shape() {
    let k = key("user_id=u1&device_id=d1&flag_keys=b,a&context=%7B%22x%22%3A1%7D");
    assert_eq!(k.route(), RouteFamily::V1Vardata);
    assert_eq!(k.deployment(), KEY);
    assert_eq!(k.track(), None);
    assert_eq!(
        k.path_and_query(),
        "/v1/vardata?context=%7B%22x%22%3A1%7D&device_id=d1&flag_key=a,b&flag_keys=a,b&user_id=u1"
    );
}

#[test]
fn empty_query_and_no_query_are_the_bare_path() {
    assert_same(&["", "&", "&&&"], "/v1/vardata");
    let none = expect_key(decide_with(&Method::GET, None, &auth(), &limits()));
    assert_eq!(none, key(""));
    assert_eq!(none.path_and_query(), "/v1/vardata");
}

#[test]
fn parameter_order_does_not_matter() {
    assert_same(
        &[
            "user_id=u&device_id=d&flag_key=f",
            "device_id=d&user_id=u&flag_key=f",
            "flag_key=f&device_id=d&user_id=u",
            "flag_key=f&user_id=u&device_id=d",
            "&flag_key=f&&user_id=u&device_id=d&",
        ],
        "/v1/vardata?device_id=d&flag_key=f&flag_keys=f&user_id=u",
    );
}

#[test]
fn plus_and_percent_20_are_both_spaces() {
    assert_same(
        &["user_id=a+b", "user_id=a%20b"],
        "/v1/vardata?user_id=a%20b",
    );
    assert_same(
        &["user_id=+a++b", "user_id=%20a%20%20b", "user_id=+a%20+b"],
        "/v1/vardata?user_id=%20a%20%20b",
    );
    assert_same(
        &["flag_keys=a+b,c", "flag_keys=a%20b,c", "flag_keys=c%2Ca+b"],
        "/v1/vardata?flag_key=a%20b,c&flag_keys=a%20b,c",
    );
    // A literal `+` must be sent as `%2B`, and stays distinct from a space.
    assert_eq!(pq("user_id=a%2Bb"), "/v1/vardata?user_id=a%2Bb");
    assert_differ("user_id=a+b", "user_id=a%2Bb");
}

#[test]
fn encoded_and_literal_commas_split_flag_lists_alike() {
    assert_same(
        &[
            "flag_keys=a,b",
            "flag_keys=a%2Cb",
            "flag_keys=a%2cb",
            "flag_keys=b%2ca",
        ],
        "/v1/vardata?flag_key=a,b&flag_keys=a,b",
    );
}

#[test]
fn hex_digits_in_either_case() {
    assert_same(
        &[
            "user_id=%C3%A9%2F",
            "user_id=%c3%a9%2f",
            "user_id=%C3%a9%2F",
            "user_id=%c3%A9%2f",
            "user_id=%C3%A9/",
            "user_id=\u{e9}/",
        ],
        "/v1/vardata?user_id=%C3%A9%2F",
    );
}

#[test]
fn unreserved_characters_may_be_encoded_or_not() {
    assert_same(
        &[
            "user_id=aZ0-._~",
            "user_id=%61%5A%30%2D%2E%5F%7E",
            "user_id=%61%5a%30%2d%2e%5f%7e",
        ],
        "/v1/vardata?user_id=aZ0-._~",
    );
}

#[test]
fn parameter_names_are_decoded() {
    assert_same(
        &[
            "user_id=u&device_id=d",
            "user%5Fid=u&device%5fid=d",
            "%75%73%65%72%5F%69%64=u&%64evice_id=d",
        ],
        "/v1/vardata?device_id=d&user_id=u",
    );
    assert_eq!(
        pq("flag%5Fkey=a&flag%5Fkeys=b"),
        "/v1/vardata?flag_key=a,b&flag_keys=a,b"
    );
    assert_same(
        &[
            &ctx(r#"{"a":1}"#),
            &ctx(r#"{"a":1}"#).replace("context", "%63ontext"),
        ],
        &ctx_pq(r#"{"a":1}"#),
    );
}

#[test]
fn missing_and_empty_ids_are_the_same() {
    assert_same(
        &[
            "",
            "user_id=",
            "user_id",
            "device_id=",
            "user_id=&device_id=",
        ],
        "/v1/vardata",
    );
    assert_same(
        &["user_id=u", "user_id=u&device_id=", "device_id&user_id=u"],
        "/v1/vardata?user_id=u",
    );
    assert_same(
        &["device_id=d", "device_id=d&user_id=", "user_id&device_id=d"],
        "/v1/vardata?device_id=d",
    );
    // user_id and device_id are not interchangeable.
    assert_differ("user_id=x", "device_id=x");
}

#[test]
fn ids_are_kept_exactly() {
    // No trimming or case folding: the upstream compares them as sent.
    assert_differ("user_id=u", "user_id=U");
    assert_differ("user_id=u", "user_id=u+");
    assert_differ("user_id=u", "user_id=+u");
    assert_eq!(pq("user_id=+u+"), "/v1/vardata?user_id=%20u%20");
}

// --- Flag keys ------------------------------------------------------------------------

#[test]
fn flag_key_and_flag_keys_are_merged() {
    assert_same(
        &[
            "flag_key=a,b,c",
            "flag_keys=a,b,c",
            "flag_key=c,b,a",
            "flag_key=a&flag_keys=b,c",
            "flag_key=c,a&flag_keys=b",
            "flag_keys=a,b&flag_key=b,c",
            "flag_key=a,a,b&flag_keys=c,c,a",
        ],
        "/v1/vardata?flag_key=a,b,c&flag_keys=a,b,c",
    );
}

#[test]
fn flag_lists_are_trimmed_and_empties_dropped() {
    assert_same(
        &[
            "flag_keys=a,b",
            "flag_keys=+a+,+b",
            "flag_keys=%20a%09,%0Ab%20",
            "flag_keys=,a,,b,",
            "flag_keys=a,+,b,%20%20",
            "flag_key=,,&flag_keys=b,a",
            "flag_key=&flag_keys=a,b",
        ],
        "/v1/vardata?flag_key=a,b&flag_keys=a,b",
    );
    // Only the ends are trimmed; inner spaces are part of the key.
    assert_eq!(
        pq("flag_keys=+a+b+"),
        "/v1/vardata?flag_key=a%20b&flag_keys=a%20b"
    );
}

#[test]
fn flag_lists_are_sorted_by_bytes() {
    assert_eq!(
        pq("flag_keys=b,B,a,_,10,9"),
        "/v1/vardata?flag_key=10,9,B,_,a,b&flag_keys=10,9,B,_,a,b"
    );
    // Case is significant.
    assert_differ("flag_keys=a", "flag_keys=A");
}

#[test]
fn no_flag_keys_means_no_flag_parameter() {
    assert_same(
        &[
            "",
            "flag_key=",
            "flag_keys=",
            "flag_key=,&flag_keys=+,+",
            "flag_keys",
        ],
        "/v1/vardata",
    );
    for mode in [
        FlagKeysParam::Both,
        FlagKeysParam::FlagKey,
        FlagKeysParam::FlagKeys,
    ] {
        let k = expect_key(decide_with(
            &Method::GET,
            Some("user_id=u&flag_key=,"),
            &auth(),
            &limits_with(mode),
        ));
        assert_eq!(k.path_and_query(), "/v1/vardata?user_id=u", "{mode:?}");
    }
}

#[test]
fn flag_keys_param_selects_the_forwarded_name() {
    let key_in = |mode, q: &str| {
        expect_key(decide_with(
            &Method::GET,
            Some(q),
            &auth(),
            &limits_with(mode),
        ))
    };
    for q in [
        "flag_key=b,a&user_id=u",
        "flag_keys=a,b&user_id=u",
        "flag_key=a&flag_keys=b&user_id=u",
    ] {
        assert_eq!(
            key_in(FlagKeysParam::Both, q).path_and_query(),
            "/v1/vardata?flag_key=a,b&flag_keys=a,b&user_id=u"
        );
        assert_eq!(
            key_in(FlagKeysParam::FlagKey, q).path_and_query(),
            "/v1/vardata?flag_key=a,b&user_id=u"
        );
        assert_eq!(
            key_in(FlagKeysParam::FlagKeys, q).path_and_query(),
            "/v1/vardata?flag_keys=a,b&user_id=u"
        );
    }
}

#[test]
fn flag_keys_with_special_characters_are_encoded() {
    assert_eq!(
        pq("flag_keys=a%26b,c%3Dd,%C3%A9"),
        "/v1/vardata?flag_key=a%26b,c%3Dd,%C3%A9&flag_keys=a%26b,c%3Dd,%C3%A9"
    );
}

// --- Context --------------------------------------------------------------------------

#[test]
fn context_key_order_at_lookup_levels_does_not_matter() {
    let canonical = r#"{"country":"DE","group_properties":{"org":{"acme":{"a":1,"b":2},"beta":{"c":3}},"team":{"x":{"d":4}}},"groups":{"org":["acme"],"team":"x"},"user_id":"u","user_properties":{"plan":"pro","seats":3}}"#;
    let spellings = [
        canonical,
        // Top level reordered.
        r#"{"user_properties":{"plan":"pro","seats":3},"user_id":"u","groups":{"org":["acme"],"team":"x"},"group_properties":{"org":{"acme":{"a":1,"b":2},"beta":{"c":3}},"team":{"x":{"d":4}}},"country":"DE"}"#,
        // user_properties reordered.
        r#"{"country":"DE","group_properties":{"org":{"acme":{"a":1,"b":2},"beta":{"c":3}},"team":{"x":{"d":4}}},"groups":{"org":["acme"],"team":"x"},"user_id":"u","user_properties":{"seats":3,"plan":"pro"}}"#,
        // groups reordered.
        r#"{"country":"DE","group_properties":{"org":{"acme":{"a":1,"b":2},"beta":{"c":3}},"team":{"x":{"d":4}}},"groups":{"team":"x","org":["acme"]},"user_id":"u","user_properties":{"plan":"pro","seats":3}}"#,
        // group_properties: types, names and properties reordered.
        r#"{"country":"DE","group_properties":{"team":{"x":{"d":4}},"org":{"beta":{"c":3},"acme":{"b":2,"a":1}}},"groups":{"org":["acme"],"team":"x"},"user_id":"u","user_properties":{"plan":"pro","seats":3}}"#,
        // Everything reordered at once.
        r#"{"groups":{"team":"x","org":["acme"]},"user_properties":{"seats":3,"plan":"pro"},"group_properties":{"team":{"x":{"d":4}},"org":{"beta":{"c":3},"acme":{"b":2,"a":1}}},"user_id":"u","country":"DE"}"#,
    ];
    let queries: Vec<String> = spellings.iter().map(|s| ctx(s)).collect();
    let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    assert_same(&refs, &ctx_pq(canonical));
}

#[test]
fn context_null_members_are_dropped_at_lookup_levels() {
    let canonical = r#"{"group_properties":{"org":{"acme":{"a":1}}},"groups":{"org":"acme"},"user_properties":{"plan":"pro"}}"#;
    let with_nulls = [
        r#"{"country":null,"group_properties":{"org":{"acme":{"a":1}}},"groups":{"org":"acme"},"user_properties":{"plan":"pro"}}"#,
        r#"{"group_properties":{"org":{"acme":{"a":1}}},"groups":{"org":"acme"},"user_properties":{"plan":"pro","old":null}}"#,
        r#"{"group_properties":{"org":{"acme":{"a":1}}},"groups":{"org":"acme","team":null},"user_properties":{"plan":"pro"}}"#,
        r#"{"group_properties":{"org":{"acme":{"a":1}},"team":null},"groups":{"org":"acme"},"user_properties":{"plan":"pro"}}"#,
        r#"{"group_properties":{"org":{"acme":{"a":1},"beta":null}},"groups":{"org":"acme"},"user_properties":{"plan":"pro"}}"#,
        r#"{"group_properties":{"org":{"acme":{"a":1,"z":null}}},"groups":{"org":"acme"},"user_properties":{"plan":"pro"}}"#,
        r#"{"a":null,"group_properties":{"org":{"acme":{"a":1,"z":null},"b":null},"c":null},"groups":{"org":"acme","d":null},"user_properties":{"plan":"pro","e":null},"f":null}"#,
    ];
    let queries: Vec<String> = std::iter::once(canonical)
        .chain(with_nulls)
        .map(ctx)
        .collect();
    let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
    assert_same(&refs, &ctx_pq(canonical));
}

#[test]
fn empty_context_is_no_context() {
    assert_same(
        &[
            "user_id=u",
            "user_id=u&context=%7B%7D",
            "user_id=u&context=%7b%7d",
            "user_id=u&context={}",
            "user_id=u&context=+%7B+%7D+",
            "user_id=u&context=%7B%22a%22%3Anull%7D",
            "user_id=u&context=%7B%22a%22%3Anull%2C%22b%22%3Anull%7D",
        ],
        "/v1/vardata?user_id=u",
    );
    // An empty lookup level is not an empty user.
    assert_eq!(
        pq(&ctx(r#"{"user_properties":{}}"#)),
        ctx_pq(r#"{"user_properties":{}}"#)
    );
    assert_eq!(
        pq(&ctx(r#"{"user_properties":{"a":null}}"#)),
        ctx_pq(r#"{"user_properties":{}}"#)
    );
}

#[test]
fn context_whitespace_is_ignored() {
    let canonical = r#"{"user_properties":{"l":[1,2],"o":{"x":true},"s":"a b"}}"#;
    let pretty = "{\n\t\"user_properties\" : {\r\n  \"l\" : [ 1 ,\r\n\t2 ] ,\n  \"o\" : {\r\"x\"\t: true } ,\n  \"s\" : \"a b\"\n }\n}\n";
    assert_same(
        &[
            &ctx(canonical),
            &ctx(pretty),
            &ctx(&format!("  {canonical}  ")),
        ],
        &ctx_pq(canonical),
    );
    // Whitespace inside strings is significant.
    assert_differ(&ctx(r#"{"s":"a b"}"#), &ctx(r#"{"s":"ab"}"#));
}

#[test]
fn context_value_spelling_is_significant() {
    let pairs = [
        (
            r#"{"user_properties":{"n":"1"}}"#,
            r#"{"user_properties":{"n":1}}"#,
        ),
        (
            r#"{"user_properties":{"n":1.0}}"#,
            r#"{"user_properties":{"n":1}}"#,
        ),
        (
            r#"{"user_properties":{"n":1e2}}"#,
            r#"{"user_properties":{"n":100}}"#,
        ),
        (
            r#"{"user_properties":{"n":1E2}}"#,
            r#"{"user_properties":{"n":1e2}}"#,
        ),
        (
            r#"{"user_properties":{"n":-0}}"#,
            r#"{"user_properties":{"n":0}}"#,
        ),
        (r#"{"n":1.0}"#, r#"{"n":1}"#),
        (r#"{"n":"1"}"#, r#"{"n":1}"#),
        // Object-valued properties keep their member order and their nulls.
        (
            r#"{"user_properties":{"o":{"a":1,"b":2}}}"#,
            r#"{"user_properties":{"o":{"b":2,"a":1}}}"#,
        ),
        (
            r#"{"user_properties":{"o":{"a":1}}}"#,
            r#"{"user_properties":{"o":{"a":1,"b":null}}}"#,
        ),
        (r#"{"o":{"a":1,"b":2}}"#, r#"{"o":{"b":2,"a":1}}"#),
        (
            r#"{"group_properties":{"t":{"n":{"o":{"a":1,"b":2}}}}}"#,
            r#"{"group_properties":{"t":{"n":{"o":{"b":2,"a":1}}}}}"#,
        ),
        (
            r#"{"groups":{"t":{"a":1,"b":2}}}"#,
            r#"{"groups":{"t":{"b":2,"a":1}}}"#,
        ),
        // Array order is kept (string escapes are not: see escape_tests.rs).
        (
            r#"{"user_properties":{"l":[1,2]}}"#,
            r#"{"user_properties":{"l":[2,1]}}"#,
        ),
    ];
    for (a, b) in pairs {
        assert_differ(&ctx(a), &ctx(b));
        // Each is kept exactly as sent.
        assert_eq!(pq(&ctx(a)), ctx_pq(a), "{a}");
        assert_eq!(pq(&ctx(b)), ctx_pq(b), "{b}");
    }
}

#[test]
fn context_member_names_are_compared_decoded() {
    assert_same(
        &[
            &ctx(r#"{"user_id":"u"}"#),
            &ctx(r#"{"user_\u0069d":"u"}"#),
            &ctx(r#"{"\u0075ser_id":"u"}"#),
        ],
        &ctx_pq(r#"{"user_id":"u"}"#),
    );
    assert_same(
        &[
            &ctx(r#"{"user_properties":{"b":1,"a":2}}"#),
            &ctx(r#"{"user_propertie\u0073":{"\u0062":1,"a":2}}"#),
        ],
        &ctx_pq(r#"{"user_properties":{"a":2,"b":1}}"#),
    );
}

#[test]
fn context_member_names_are_re_escaped() {
    // Names are written from their decoded form, so quotes and backslashes are escaped
    // again and every spelling of one name gives one key.
    let canonical = r#"{"a\"b\\c\n":1,"user_properties":{"q\"":2}}"#;
    assert_same(
        &[
            &ctx(canonical),
            &ctx(r#"{"user_properties":{"q\u0022":2},"a\u0022b\u005Cc\u000a":1}"#),
        ],
        &ctx_pq(canonical),
    );
}

#[test]
fn invalid_context_bypasses() {
    for json in [
        "{",
        "}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{} {}",
        "{\"a\":1} x",
        "nul",
        "[1]",
        "\"x\"",
        "1",
        "true",
        "null",
        "[]",
        r#"{"a":1,"a":2}"#,
        r#"{"a":1,"a":1}"#,
        r#"{"user_properties":{"p":1,"p":2}}"#,
        r#"{"groups":{"t":"a","t":"b"}}"#,
        r#"{"group_properties":{"t":{"n":{"p":1}},"t":{}}}"#,
        r#"{"group_properties":{"t":{"n":{"p":1},"n":{"p":2}}}}"#,
        r#"{"group_properties":{"t":{"n":{"p":1,"p":2}}}}"#,
        r#"{"user_id":"a","user_\u0069d":"b"}"#,
        r#"{"\ud800":1}"#,
    ] {
        expect_bypass(decide(&ctx(json)), BypassReason::InvalidContext);
    }
    expect_bypass(decide("context="), BypassReason::InvalidContext);
    expect_bypass(decide("context"), BypassReason::InvalidContext);
    expect_bypass(decide("context=+"), BypassReason::InvalidContext);
    expect_bypass(
        decide("user_id=u&context=%5B1%5D"),
        BypassReason::InvalidContext,
    );
    expect_bypass(
        decide("context=%22x%22&user_id=u"),
        BypassReason::InvalidContext,
    );
    expect_bypass(decide("context=1"), BypassReason::InvalidContext);
}

#[test]
fn duplicate_member_with_a_null_is_still_a_duplicate() {
    // `{"a":1,"a":null}` is `a` missing to a last-wins parser and `a: 1` to a first-wins
    // one: it must not share an entry with (or be forwarded as) `{"a":1}`.
    for json in [
        r#"{"a":1,"a":null}"#,
        r#"{"a":null,"a":1}"#,
        r#"{"user_properties":{"p":"x","p":null}}"#,
        r#"{"group_properties":{"t":{"n":null,"n":{"p":1}}}}"#,
    ] {
        expect_bypass(decide(&ctx(json)), BypassReason::InvalidContext);
    }
}

#[test]
fn duplicate_members_below_lookup_levels_are_kept_as_sent() {
    let json = r#"{"user_properties":{"o":{"a":1,"a":2}}}"#;
    assert_eq!(pq(&ctx(json)), ctx_pq(json));
}

#[test]
fn context_too_long_is_rejected() {
    let small = Limits {
        max_context_bytes: 16,
        flag_keys_param: FlagKeysParam::Both,
        tracking: crate::config::Tracking::Passthrough,
    };
    let at = |q: &str, l: &Limits| decide_with(&Method::GET, Some(q), &auth(), l);
    // Exactly at the limit (decoded bytes) is fine; one more is not.
    let fits = r#"{"a":"123456789"}"#; // 17 bytes
    assert_eq!(fits.len(), 17);
    assert!(matches!(
        at(
            &ctx(fits),
            &Limits {
                max_context_bytes: 17,
                ..small
            }
        ),
        Decision::Cache(_)
    ));
    assert!(matches!(
        at(&ctx(fits), &small),
        Decision::Reject(Rejection::ContextTooLong)
    ));
    // The limit is on the decoded context, even when it is not valid JSON.
    assert!(matches!(
        at(
            "context=%7B%7B%7B%7B%7B%7B%7B%7B%7B%7B%7B%7B%7B%7B%7B%7B%7B",
            &small
        ),
        Decision::Reject(Rejection::ContextTooLong)
    ));
    assert!(matches!(
        at("context=%7B%7D%7B%7B%7B%7B", &small),
        Decision::Bypass(BypassReason::InvalidContext)
    ));
    // And with the default limits.
    let big = format!(r#"{{"user_properties":{{"p":"{}"}}}}"#, "x".repeat(8192));
    assert!(matches!(
        decide(&ctx(&big)),
        Decision::Reject(Rejection::ContextTooLong)
    ));
    let just = format!(r#"{{"p":"{}"}}"#, "x".repeat(8192 - 8));
    assert_eq!(just.len(), 8192);
    assert!(matches!(decide(&ctx(&just)), Decision::Cache(_)));
}

// --- Headers --------------------------------------------------------------------------

#[test]
fn authorization_scheme_is_case_insensitive_and_whitespace_tolerant() {
    for value in [
        "Api-Key k",
        "api-key k",
        "API-KEY   k  ",
        "Api-Key\tk",
        "  aPi-kEy k",
    ] {
        let k = key_with_headers("user_id=u", &[("authorization", value)]);
        assert_eq!(k.deployment(), "k", "{value:?}");
        assert_eq!(
            k,
            key_with_headers("user_id=u", &[("authorization", "Api-Key k")])
        );
    }
}

#[test]
fn bad_authorization_bypasses() {
    let cases: &[&[(&str, &str)]] = &[
        &[],
        &[("authorization", "Bearer k")],
        &[("authorization", "Api-Key")],
        &[("authorization", "Api-Key ")],
        &[("authorization", "Api-Key a b")],
        &[("authorization", "ApiKey k")],
        &[("authorization", "Api-Keyk")],
        &[("authorization", "")],
        &[
            ("authorization", "Api-Key k"),
            ("authorization", "Api-Key k"),
        ],
        &[
            ("authorization", "Api-Key a"),
            ("authorization", "Api-Key b"),
        ],
        &[("x-api-key", "k")],
    ];
    for h in cases {
        expect_bypass(
            decide_with(&Method::GET, Some("user_id=u"), &headers(h), &limits()),
            BypassReason::Authorization,
        );
    }
    // A value that is not visible ASCII.
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_bytes(b"Api-Key k\xE9").unwrap(),
    );
    expect_bypass(
        decide_with(&Method::GET, Some("user_id=u"), &h, &limits()),
        BypassReason::Authorization,
    );
}

#[test]
fn deployment_keys_separate_entries() {
    let a = key_with_headers("user_id=u", &[("authorization", "Api-Key a")]);
    let b = key_with_headers("user_id=u", &[("authorization", "Api-Key b")]);
    let upper = key_with_headers("user_id=u", &[("authorization", "Api-Key A")]);
    assert_eq!(a.deployment(), "a");
    assert_eq!(b.deployment(), "b");
    assert_eq!(a.path_and_query(), b.path_and_query());
    assert_ne!(a, b);
    assert_ne!(a, upper);
    assert_eq!(
        a,
        key_with_headers("user_id=u", &[("authorization", "api-key a")])
    );
}

#[test]
fn track_header_is_part_of_the_key() {
    let auth = ("authorization", "Api-Key k");
    let none = key_with_headers("user_id=u", &[auth]);
    let track = key_with_headers("user_id=u", &[auth, ("x-amp-exp-track", "track")]);
    let no_track = key_with_headers("user_id=u", &[auth, ("x-amp-exp-track", "no-track")]);
    let padded = key_with_headers("user_id=u", &[auth, ("X-Amp-Exp-Track", "  track ")]);
    assert_eq!(none.track(), None);
    assert_eq!(track.track(), Some("track"));
    assert_eq!(no_track.track(), Some("no-track"));
    assert_eq!(padded.track(), Some("track"));
    assert_eq!(padded, track);
    assert_ne!(none, track);
    assert_ne!(none, no_track);
    assert_ne!(track, no_track);
    // The header changes nothing but the track.
    assert_eq!(none.path_and_query(), track.path_and_query());
    assert_eq!(none.deployment(), track.deployment());
}

#[test]
fn repeated_or_invalid_track_header_bypasses() {
    let auth = ("authorization", "Api-Key k");
    for h in [
        &[
            auth,
            ("x-amp-exp-track", "track"),
            ("x-amp-exp-track", "track"),
        ][..],
        &[
            auth,
            ("x-amp-exp-track", "track"),
            ("x-amp-exp-track", "no-track"),
        ][..],
    ] {
        expect_bypass(
            decide_with(&Method::GET, Some("user_id=u"), &headers(h), &limits()),
            BypassReason::TrackHeader,
        );
    }
    let mut h = headers(&[auth]);
    h.insert(
        "x-amp-exp-track",
        HeaderValue::from_bytes(b"tr\xFFck").unwrap(),
    );
    expect_bypass(
        decide_with(&Method::GET, Some("user_id=u"), &h, &limits()),
        BypassReason::TrackHeader,
    );
}

#[test]
fn exposure_tracking_bypasses() {
    let auth = ("authorization", "Api-Key k");
    for value in ["track", "TRACK", "", "yes", "no-track, track"] {
        expect_bypass(
            decide_with(
                &Method::GET,
                Some("user_id=u"),
                &headers(&[auth, ("x-amp-exp-exposure-track", value)]),
                &limits(),
            ),
            BypassReason::ExposureTracking,
        );
    }
    let repeated = headers(&[
        auth,
        ("x-amp-exp-exposure-track", "no-track"),
        ("x-amp-exp-exposure-track", "no-track"),
    ]);
    expect_bypass(
        decide_with(&Method::GET, Some("user_id=u"), &repeated, &limits()),
        BypassReason::ExposureTracking,
    );
}

#[test]
fn exposure_no_track_is_the_same_as_absent() {
    let auth = ("authorization", "Api-Key k");
    let absent = key_with_headers("user_id=u", &[auth]);
    for value in ["no-track", "No-Track", " no-track "] {
        let k = key_with_headers("user_id=u", &[auth, ("x-amp-exp-exposure-track", value)]);
        assert_eq!(k, absent, "{value:?}");
        assert_eq!(k.track(), None);
    }
}

#[test]
fn headers_other_than_the_key_ones_are_ignored() {
    let auth = ("authorization", "Api-Key k");
    let plain = key_with_headers("user_id=u", &[auth]);
    let noisy = key_with_headers(
        "user_id=u",
        &[
            auth,
            ("user-agent", "x"),
            ("accept", "text/plain"),
            ("cookie", "a=b"),
            ("x-forwarded-for", "1.2.3.4"),
            ("cache-control", "no-cache"),
        ],
    );
    assert_eq!(plain, noisy);
}

// --- Bypass and reject on the query ---------------------------------------------------

#[test]
fn cache_buster_bypasses() {
    for q in [
        "d=",
        "d",
        "d=123",
        "user_id=u&d=abc",
        "d=1&user_id=u",
        "%64=1",
        "user_id=u&d=%FF",
        "d=1&d=2",
    ] {
        expect_bypass(decide(q), BypassReason::CacheBuster);
    }
    // Only the exact name `d`.
    assert_eq!(pq("dd=1&D=1&d_=1&user_id=u"), "/v1/vardata?user_id=u");
}

#[test]
fn unknown_parameters_are_dropped() {
    assert_same(
        &[
            "user_id=u&flag_key=f",
            "user_id=u&flag_key=f&utm_source=x",
            "x=1&user_id=u&y=&flag_key=f&z",
            "user_id=u&flag_key=f&User_Id=other&FLAG_KEY=g&userid=v",
            "user_id=u&flag_key=f&x=1&x=2",
            "user_id=u&flag_key=f&=nameless&%3D=eq",
            "user_id=u&flag_key=f&x=a%",
        ],
        "/v1/vardata?flag_key=f&flag_keys=f&user_id=u",
    );
}

#[test]
fn undecodable_parameters_bypass() {
    for q in [
        "user_id=%FF",
        "user_id=%C3",
        "device_id=%C3%28",
        "flag_key=%80",
        "context=%FE",
        "user_id=u&flag_keys=%E2%9C",
    ] {
        expect_bypass(decide(q), BypassReason::InvalidUtf8);
    }
}

#[test]
fn undecodable_unknown_parameters_are_dropped_unread() {
    assert_same(
        &[
            "user_id=u",
            "user_id=u&x=%FF",
            "%FF=1&user_id=u",
            "user_id=u&%C3=%C3",
            "user%FF_id=x&user_id=u",
        ],
        "/v1/vardata?user_id=u",
    );
}

#[test]
fn malformed_escapes_are_literal() {
    assert_eq!(pq("user_id=100%"), "/v1/vardata?user_id=100%25");
    assert_eq!(pq("user_id=%zz"), "/v1/vardata?user_id=%25zz");
    assert_eq!(pq("user_id=%4"), "/v1/vardata?user_id=%254");
    assert_same(&["user_id=%25", "user_id=%"], "/v1/vardata?user_id=%25");
}

#[test]
fn repeated_key_parameters() {
    for q in [
        "user_id=a&user_id=b",
        "device_id=a&device_id=b",
        "flag_key=a&flag_key=b",
        "flag_keys=a&flag_keys=b",
        "flag_keys=a,b&flag_keys=b,a",
        "user_id=a&user_id=",
        "user_id=a&user_id",
        "user_id=a&user%5Fid=b",
        "context=%7B%7D&context=%7B%22a%22%3A1%7D",
    ] {
        expect_bypass(decide(q), BypassReason::ConflictingParameter);
    }
    // The same value twice, however spelled, is one parameter.
    assert_same(
        &[
            "user_id=a+b",
            "user_id=a+b&user_id=a%20b",
            "user%5Fid=a%20b&user_id=a+b",
        ],
        "/v1/vardata?user_id=a%20b",
    );
    assert_same(
        &[
            "flag_key=a&flag_keys=a",
            "flag_key=a&flag_key=a",
            "flag_keys=a&flag_keys=a",
        ],
        "/v1/vardata?flag_key=a&flag_keys=a",
    );
    assert_same(
        &[
            "context=%7B%7D&context=%7B%7D&user_id=u",
            "user_id=u&user_id=u",
        ],
        "/v1/vardata?user_id=u",
    );
}

// --- Methods --------------------------------------------------------------------------

#[test]
fn non_get_methods_bypass() {
    for m in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ] {
        expect_bypass(
            decide_with(&m, Some("user_id=u"), &auth(), &limits()),
            BypassReason::Method,
        );
    }
    // The method is checked first: even without auth.
    expect_bypass(
        decide_with(&Method::POST, Some("d=1"), &HeaderMap::new(), &limits()),
        BypassReason::Method,
    );
}

#[test]
fn head_shares_the_get_key() {
    let q = "user_id=u&flag_keys=b,a&context=%7B%22x%22%3A1%7D";
    let get = expect_key(decide_with(&Method::GET, Some(q), &auth(), &limits()));
    let head = expect_key(decide_with(&Method::HEAD, Some(q), &auth(), &limits()));
    assert_eq!(get, head);
    assert_eq!(get.path_and_query(), head.path_and_query());
}

// --- The key is the forwarded request -------------------------------------------------

#[test]
fn canonical_query_round_trips() {
    for q in [
        "user_id=%C3%A9+x&device_id=%26%3D&flag_key=%20b,a&context=%7B%22b%22%3A1%2C%22a%22%3A%22%26%22%7D",
        "flag_keys=x%2By,%E2%9C%93",
        "",
    ] {
        let k = key(q);
        let again = key(k.path_and_query().split_once('?').map_or("", |(_, q)| q));
        assert_eq!(again, k);
    }
}

#[test]
fn upstream_request_is_built_from_the_key() {
    let k = key_with_headers(
        "user_id=u&flag_key=a",
        &[
            ("authorization", "api-key  secret "),
            ("x-amp-exp-track", "track"),
            ("x-extra", "dropped"),
        ],
    );
    let req = k.upstream_request("https://api.lab.amplitude.com").unwrap();
    assert_eq!(
        req.uri().to_string(),
        "https://api.lab.amplitude.com/v1/vardata?flag_key=a&flag_keys=a&user_id=u"
    );
    assert_eq!(req.method(), Method::GET);
    assert_eq!(req.headers()["authorization"], "Api-Key secret");
    assert_eq!(req.headers()["x-amp-exp-track"], "track");
    assert!(req.headers().get("x-extra").is_none());
}

#[test]
fn bypass_reasons_have_labels() {
    use BypassReason as B;
    let all = [
        (B::Method, "method"),
        (B::CacheBuster, "cache_buster"),
        (B::ExposureTracking, "exposure_tracking"),
        (B::Authorization, "authorization"),
        (B::TrackHeader, "track_header"),
        (B::InvalidUtf8, "invalid_utf8"),
        (B::ConflictingParameter, "conflicting_parameter"),
        (B::InvalidContext, "invalid_context"),
    ];
    for (reason, label) in all {
        assert_eq!(reason.as_str(), label);
    }
}

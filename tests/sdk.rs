//! The SDK endpoints through the gateway, against a recording upstream: `/sdk/v2/vardata`
//! and `/sdk/vardata` (GET with a base64 `X-Amp-Exp-User`, POST with a JSON body),
//! `/sdk/v2/flags` and `/v1/flags`.
//!
//! What is proved here: every spelling of one question is one entry and one upstream
//! request; the request forwarded is exactly the canonical one, built from the key alone;
//! what is in the key and what bypasses; families and deployments never share; flags TTL
//! and coalescing; the body limit.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use http::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

/// The four base64 flavours the SDKs send: standard padded (Go), standard unpadded,
/// URL-safe padded (Android), URL-safe unpadded (JS, Python's flag keys).
fn flavours(bytes: &[u8]) -> [String; 4] {
    [
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
    ]
}

fn b64url(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text.as_bytes())
}

/// The canonical user: lookup levels sorted, nulls dropped, values as sent, no whitespace.
const CANON: &str = r#"{"device_id":"d1","group_properties":{"org":{"acme":{"size":10,"tier":"gold"}}},"groups":{"org":["acme"]},"user_id":"u1","user_properties":{"plan":"pro","tag":"?>~ü!"}}"#;

/// Spellings of [`CANON`]: member order and whitespace at every lookup level, and `null`
/// members, which are the same as missing ones.
const SPELLINGS: [&str; 3] = [
    CANON,
    r#"{ "user_id" : "u1", "user_properties" : { "tag" : "?>~ü!", "plan" : "pro", "gone" : null },
        "device_id" : "d1", "country" : null, "groups" : { "org" : [ "acme" ] },
        "group_properties" : { "org" : { "acme" : { "tier" : "gold", "size" : 10, "x" : null } } } }"#,
    "{\n\t\"groups\":{\"org\":[\"acme\"],\"team\":null},\"group_properties\":{\"org\":{\"acme\":{\"tier\":\"gold\",\"size\":10}}},\n\t\"user_properties\":{\"tag\":\"?>~ü!\",\"plan\":\"pro\"},\"user_id\":\"u1\",\"device_id\":\"d1\",\"os\":null\n}",
];

/// Spellings of the flag list `["a","b"]`: order, duplicates, whitespace.
const FLAG_LISTS: [&str; 4] = [
    r#"["b","a","b"]"#,
    r#"["a","b","a"]"#,
    r#"[ "b" , "a" ]"#,
    r#"["a", "b"]"#,
];

/// A request the gateway must not cache: method, extra headers, body.
type BadRequest<'a> = (Method, Vec<(&'a str, &'a str)>, &'a str);

fn auth(key: &str) -> String {
    format!("Api-Key {key}")
}

/// The echo FakeUpstream answers to the canonical SDK request with `path_and_query` and `body`.
fn echo(path_and_query: &str, body: &str) -> Value {
    json!({ "method": "POST", "path_and_query": path_and_query, "body": body })
}

#[tokio::test]
async fn every_spelling_of_one_sdk_request_is_one_upstream_request() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let a = auth(KEY);

    // The test data must exercise what it claims: flavours that really differ.
    for text in SPELLINGS.iter().chain(FLAG_LISTS.iter()) {
        let f = flavours(text.as_bytes());
        assert!(
            f[0].contains(['+', '/']) || text.starts_with('['),
            "{text}: standard and URL-safe must differ"
        );
        assert!(
            f[0].ends_with('='),
            "{text}: padded and unpadded must differ"
        );
    }
    assert!(flavours(CANON.as_bytes())[0].contains(['+', '/']));

    let mut got = Vec::new();
    // GET: four user flavours × three spellings, flag keys in every flavour and order.
    let queries = ["?v=0", "?junk=1&v=0", "?v=0&x=%FF", "?v=%30"];
    for (i, spelling) in SPELLINGS.iter().enumerate() {
        for (j, user) in flavours(spelling.as_bytes()).iter().enumerate() {
            let list = FLAG_LISTS[(i + j) % 4];
            let keys = &flavours(list.as_bytes())[(i + 2 * j) % 4];
            let url = gw.url(&format!("/sdk/v2/vardata{}", queries[(i + j) % 4]));
            let headers = [
                ("authorization", a.as_str()),
                ("x-amp-exp-user", user.as_str()),
                ("x-amp-exp-flag-keys", keys.as_str()),
            ];
            got.push(send(&c, Method::GET, &url, &headers, "").await);
        }
    }
    // GET with the flag keys in the query instead: the same canonical list.
    let user = URL_SAFE_NO_PAD.encode(SPELLINGS[1]);
    got.push(
        send(
            &c,
            Method::GET,
            &gw.url("/sdk/v2/vardata?flag_key=b,a&flag_keys=a&v=0"),
            &[("authorization", &a), ("x-amp-exp-user", &user)],
            "",
        )
        .await,
    );
    // POST: the same user as a JSON body, any spelling; a header user on a POST is not read.
    for (i, spelling) in SPELLINGS.iter().enumerate() {
        let keys = &flavours(FLAG_LISTS[i].as_bytes())[i];
        let ct = [
            "application/json",
            "application/json;charset=utf-8",
            "text/plain",
        ][i];
        got.push(
            send(
                &c,
                Method::POST,
                &gw.url("/sdk/v2/vardata?v=0"),
                &[
                    ("authorization", &a),
                    ("content-type", ct),
                    ("x-amp-exp-flag-keys", keys),
                    ("x-amp-exp-user", "ignored on a POST"),
                ],
                spelling,
            )
            .await,
        );
    }

    assert_eq!(
        upstream.count(),
        1,
        "one upstream request for every spelling"
    );
    assert_eq!(got[0].x_cache(), "MISS");
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.status, 200, "request {i}");
        assert_eq!(g.body, got[0].body, "request {i}");
        if i > 0 {
            assert_eq!(g.x_cache(), "HIT", "request {i}");
        }
    }
    assert_eq!(got[0].json(), echo("/sdk/v2/vardata?v=0", CANON));
}

/// A Python service (`json.dumps` escapes non-ASCII, POST body) and a Node service
/// (`JSON.stringify`, base64 header) asking for the same user share one entry.
#[tokio::test]
async fn string_escapes_in_sdk_users_make_one_upstream_request() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let a = auth(KEY);
    let python = r#"{"user_id": "u1", "user_properties": {"city": "Z\u00fcrich", "mood": "\ud83d\ude00", "o": {"\u006b": "a\/b"}}}"#;
    let node =
        r#"{"user_id":"u1","user_properties":{"city":"Zürich","mood":"😀","o":{"k":"a/b"}}}"#;
    let url = gw.url("/sdk/v2/vardata?v=0");
    let first = send(
        &c,
        Method::POST,
        &url,
        &[("authorization", &a), ("content-type", "application/json")],
        python,
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.x_cache(), "MISS");
    let second = send(
        &c,
        Method::GET,
        &url,
        &[("authorization", &a), ("x-amp-exp-user", &b64url(node))],
        "",
    )
    .await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.body, first.body);
    assert_eq!(upstream.count(), 1);
    // Forwarded with the canonical string: raw UTF-8, `/` unescaped.
    assert_eq!(
        first.json(),
        echo(
            "/sdk/v2/vardata?v=0",
            r#"{"user_id":"u1","user_properties":{"city":"Zürich","mood":"😀","o":{"k":"a/b"}}}"#
        )
    );
}

#[tokio::test]
async fn the_forwarded_request_is_exactly_the_canonical_one() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let keys = STANDARD.encode(r#"["b","a","b"]"#);
    let user = STANDARD.encode(SPELLINGS[1]);
    let got = send(
        &c,
        Method::GET,
        &gw.url("/sdk/v2/vardata?v=0&junk=1&eval_mode=remote&delivery_method=feature"),
        &[
            ("authorization", &format!("  api-KEY   {KEY} ")),
            ("x-amp-exp-user", &user),
            ("x-amp-exp-flag-keys", &keys),
            ("x-amp-exp-track", "no-track"),
            ("x-amp-exp-exposure-track", "no-track"),
            ("x-amp-exp-library", "experiment-js-client/1.0.0"),
            ("cookie", "session=secret"),
            ("x-forwarded-for", "203.0.113.7"),
            ("user-agent", "curious-client/1"),
            ("accept-encoding", "gzip"),
            ("x-custom", "1"),
        ],
        "",
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.x_cache(), "MISS");
    let path = "/sdk/v2/vardata?delivery_method=feature&eval_mode=remote&v=0";
    assert_eq!(got.json(), echo(path, CANON));

    let r = upstream.last();
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.path_and_query, path, "known parameters, alphabetical");
    assert_eq!(r.body, CANON.as_bytes(), "the canonical user as the body");
    let h = &r.headers;
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["authorization"], format!("Api-Key {KEY}"));
    assert_eq!(h["x-amp-exp-flag-keys"], b64url(r#"["a","b"]"#).as_str());
    assert_eq!(h["x-amp-exp-track"], "no-track");
    assert_eq!(h["accept"], "application/json");
    assert!(h["user-agent"].to_str().unwrap().starts_with("evalgate/"));
    // evalgate's own constant (`compression.upstream_gzip`), not the client's field.
    assert_eq!(h["accept-encoding"], "gzip");
    let mut names: Vec<&str> = h.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "accept",
            "accept-encoding",
            "authorization",
            "content-length",
            "content-type",
            "host",
            "user-agent",
            "x-amp-exp-flag-keys",
            "x-amp-exp-track",
        ],
        "nothing the client sent reaches the upstream but what the key holds"
    );

    // No user and no flag keys: `{}` as the body, no flag-keys header, no `v` when none was sent.
    let bare = get_with_key(&c, &gw.url("/sdk/v2/vardata"), KEY).await;
    assert_eq!(bare.x_cache(), "MISS");
    let r = upstream.last();
    assert_eq!(
        (r.method.as_str(), r.path_and_query.as_str()),
        ("POST", "/sdk/v2/vardata")
    );
    assert_eq!(r.body, "{}");
    assert!(r.headers.get("x-amp-exp-flag-keys").is_none());
    assert!(r.headers.get("x-amp-exp-track").is_none());
    // An empty user is no user: `{}`, `{"a":null}`, whitespace-only POST bodies share it.
    for (method, body) in [
        (Method::POST, "{}"),
        (Method::POST, " \n"),
        (Method::POST, r#"{"os":null}"#),
    ] {
        let got = send(
            &c,
            method,
            &gw.url("/sdk/v2/vardata"),
            &[("authorization", &auth(KEY))],
            body,
        )
        .await;
        assert_eq!(got.x_cache(), "HIT", "{body:?}");
    }
    let empty_header = STANDARD.encode("{ }");
    let got = send(
        &c,
        Method::GET,
        &gw.url("/sdk/v2/vardata"),
        &[
            ("authorization", &auth(KEY)),
            ("x-amp-exp-user", &empty_header),
        ],
        "",
    )
    .await;
    assert_eq!(got.x_cache(), "HIT");
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn v_eval_mode_delivery_method_track_and_deployment_are_in_the_key() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let user = URL_SAFE_NO_PAD.encode(CANON);
    // (query, deployment key, X-Amp-Exp-Track, forwarded path_and_query)
    let variants: [(&str, &str, Option<&str>, &str); 10] = [
        ("?v=0", KEY, None, "/sdk/v2/vardata?v=0"),
        ("?v=1", KEY, None, "/sdk/v2/vardata?v=1"),
        ("", KEY, None, "/sdk/v2/vardata"),
        (
            "?v=0&eval_mode=remote",
            KEY,
            None,
            "/sdk/v2/vardata?eval_mode=remote&v=0",
        ),
        (
            "?v=0&eval_mode=local",
            KEY,
            None,
            "/sdk/v2/vardata?eval_mode=local&v=0",
        ),
        (
            "?v=0&delivery_method=web",
            KEY,
            None,
            "/sdk/v2/vardata?delivery_method=web&v=0",
        ),
        (
            "?delivery_method=feature&v=0",
            KEY,
            None,
            "/sdk/v2/vardata?delivery_method=feature&v=0",
        ),
        ("?v=0", KEY, Some("track"), "/sdk/v2/vardata?v=0"),
        ("?v=0", KEY, Some("no-track"), "/sdk/v2/vardata?v=0"),
        ("?v=0", KEY2, None, "/sdk/v2/vardata?v=0"),
    ];
    let ask = |query: &str, key: &str, track: Option<&str>| {
        let url = gw.url(&format!("/sdk/v2/vardata{query}"));
        let a = auth(key);
        let user = user.clone();
        let track = track.map(str::to_string);
        let c = c.clone();
        async move {
            let mut headers = vec![
                ("authorization", a.as_str()),
                ("x-amp-exp-user", user.as_str()),
            ];
            if let Some(t) = &track {
                headers.push(("x-amp-exp-track", t.as_str()));
            }
            send(&c, Method::GET, &url, &headers, "").await
        }
    };
    for (n, (query, key, track, forwarded)) in variants.iter().enumerate() {
        let got = ask(query, key, *track).await;
        assert_eq!(got.x_cache(), "MISS", "{query} {key} {track:?}");
        assert_eq!(
            upstream.count(),
            n + 1,
            "{query} {key} {track:?} is a new upstream request"
        );
        let r = upstream.last();
        assert_eq!(r.path_and_query, *forwarded);
        assert_eq!(r.headers["authorization"], auth(key).as_str());
        assert_eq!(
            r.headers
                .get("x-amp-exp-track")
                .map(|v| v.to_str().unwrap()),
            *track
        );
    }
    for (query, key, track, _) in &variants {
        let got = ask(query, key, *track).await;
        assert_eq!(got.x_cache(), "HIT", "{query} {key} {track:?}");
    }
    // Encodings and repeats of the same value are the same key.
    for query in ["?v=%30", "?v=0&v=0", "?eval_mode=re%6Dote&v=0&junk"] {
        let got = ask(query, KEY, None).await;
        assert_eq!(got.x_cache(), "HIT", "{query}");
    }
    assert_eq!(upstream.count(), variants.len());
}

#[tokio::test]
async fn cache_busters_exposure_tracking_and_bad_input_bypass_and_relay_the_upstream() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let a = auth(KEY);
    let user = STANDARD.encode(CANON);

    // `d`: forwarded verbatim (GET, the query as sent, the user header), every time.
    for n in 1..=2 {
        let got = send(
            &c,
            Method::GET,
            &gw.url("/sdk/v2/vardata?v=0&d=xkcdq"),
            &[("authorization", &a), ("x-amp-exp-user", &user)],
            "",
        )
        .await;
        assert_eq!(got.x_cache(), "BYPASS");
        assert_eq!(
            got.header("x-upstream-header"),
            Some("kept"),
            "relayed whole"
        );
        assert_eq!(
            got.json(),
            json!({"method": "GET", "path_and_query": "/sdk/v2/vardata?v=0&d=xkcdq", "body": ""})
        );
        assert_eq!(upstream.count(), n);
        assert_eq!(upstream.last().headers["x-amp-exp-user"], user.as_str());
    }
    // Exposure tracking: the upstream must see every one.
    for n in 3..=4 {
        let got = send(
            &c,
            Method::GET,
            &gw.url("/sdk/v2/vardata?v=0"),
            &[
                ("authorization", &a),
                ("x-amp-exp-user", &user),
                ("x-amp-exp-exposure-track", "track"),
            ],
            "",
        )
        .await;
        assert_eq!(got.x_cache(), "BYPASS");
        assert_eq!(upstream.count(), n);
        assert_eq!(upstream.last().headers["x-amp-exp-exposure-track"], "track");
    }
    // A parameter repeated with different values.
    let got = send(
        &c,
        Method::GET,
        &gw.url("/sdk/v2/vardata?v=0&v=1"),
        &[("authorization", &a)],
        "",
    )
    .await;
    assert_eq!(got.x_cache(), "BYPASS");
    assert_eq!(upstream.count(), 5);

    // Bad users and flag keys: the upstream's own answer (here a 400) reaches the client,
    // and is never stored.
    upstream.script(Script {
        status: Some(StatusCode::BAD_REQUEST),
        ..Script::default()
    });
    let not_utf8 = STANDARD.encode([0x7b, 0xff, 0x7d]);
    let invalid_json = STANDARD.encode(r#"{"user_id":"#);
    let array = STANDARD.encode("[1,2]");
    let string = URL_SAFE.encode(r#""u1""#);
    let duplicate = STANDARD.encode(r#"{"user_id":"a","user_id":"b"}"#);
    let keys_object = STANDARD.encode(r#"{"a":1}"#);
    let keys_numbers = STANDARD.encode("[1,2]");
    let cases: Vec<BadRequest> = vec![
        (Method::GET, vec![("x-amp-exp-user", "not base64!")], ""),
        (Method::GET, vec![("x-amp-exp-user", "a+b_")], ""),
        (Method::GET, vec![("x-amp-exp-user", &not_utf8)], ""),
        (Method::GET, vec![("x-amp-exp-user", &invalid_json)], ""),
        (Method::GET, vec![("x-amp-exp-user", &array)], ""),
        (Method::GET, vec![("x-amp-exp-user", &string)], ""),
        (Method::GET, vec![("x-amp-exp-user", &duplicate)], ""),
        (Method::GET, vec![("x-amp-exp-flag-keys", "%%%")], ""),
        (Method::GET, vec![("x-amp-exp-flag-keys", &keys_object)], ""),
        (
            Method::GET,
            vec![("x-amp-exp-flag-keys", &keys_numbers)],
            "",
        ),
        (
            Method::POST,
            vec![("content-type", "application/json")],
            r#"{"user_id":"#,
        ),
        (
            Method::POST,
            vec![("content-type", "application/json")],
            "[1]",
        ),
        (
            Method::POST,
            vec![("content-type", "application/json")],
            "null",
        ),
        (
            Method::POST,
            vec![("content-type", "application/json")],
            r#"{"a":1} x"#,
        ),
    ];
    for (method, extra, body) in &cases {
        for _ in 0..2 {
            let before = upstream.count();
            let mut headers = vec![("authorization", a.as_str())];
            headers.extend(extra.iter().copied());
            let got = send(
                &c,
                method.clone(),
                &gw.url("/sdk/v2/vardata?v=0"),
                &headers,
                body,
            )
            .await;
            assert_eq!(got.status, 400, "{method} {extra:?} {body:?}");
            assert_eq!(got.x_cache(), "BYPASS", "{method} {extra:?} {body:?}");
            assert_eq!(got.json(), json!({"scripted": 400}));
            assert_eq!(
                upstream.count(),
                before + 1,
                "{extra:?} {body:?} reached the upstream"
            );
            let r = upstream.last();
            assert_eq!(&r.method, method, "forwarded verbatim");
            assert_eq!(r.path_and_query, "/sdk/v2/vardata?v=0");
            assert_eq!(r.body, body.as_bytes());
            for (name, value) in extra {
                assert_eq!(r.headers[*name], *value, "{name} forwarded as sent");
            }
        }
    }
}

#[tokio::test]
async fn families_and_deployments_never_share_entries() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let user = URL_SAFE_NO_PAD.encode(CANON);
    let get = |path: &str, key: &str| {
        let (url, a, user, c) = (gw.url(path), auth(key), user.clone(), c.clone());
        async move {
            send(
                &c,
                Method::GET,
                &url,
                &[("authorization", &a), ("x-amp-exp-user", &user)],
                "",
            )
            .await
        }
    };
    let post = |path: &str| {
        let (url, c) = (gw.url(path), c.clone());
        async move {
            send(
                &c,
                Method::POST,
                &url,
                &[("authorization", &auth(KEY))],
                CANON,
            )
            .await
        }
    };

    let v2 = get("/sdk/v2/vardata?v=0", KEY).await;
    let legacy = get("/sdk/vardata?v=0", KEY).await;
    let mut ctx = String::new();
    evalgate::normalize::form::encode_into(&mut ctx, CANON);
    let v1 = get_with_key(&c, &gw.url(&format!("/v1/vardata?context={ctx}")), KEY).await;
    let other_key = get("/sdk/v2/vardata?v=0", KEY2).await;
    for g in [&v2, &legacy, &v1, &other_key] {
        assert_eq!((g.status.as_u16(), g.x_cache()), (200, "MISS"));
    }
    assert_eq!(upstream.count(), 4);
    let paths: Vec<(String, String)> = upstream
        .requests()
        .iter()
        .map(|r| (r.method.to_string(), r.path_and_query.clone()))
        .collect();
    assert_eq!(paths[0], ("POST".into(), "/sdk/v2/vardata?v=0".into()));
    assert_eq!(paths[1], ("POST".into(), "/sdk/vardata?v=0".into()));
    assert_eq!(paths[2].0, "GET");
    assert!(paths[2].1.starts_with("/v1/vardata?context="), "{paths:?}");
    assert_eq!(
        upstream.requests()[3].headers["authorization"],
        auth(KEY2).as_str()
    );
    assert_ne!(v2.body, legacy.body);
    assert_ne!(v2.body, v1.body);
    assert_ne!(legacy.body, v1.body);

    // Each family answers its own repeats, GET or POST alike.
    assert_eq!(post("/sdk/v2/vardata?v=0").await.body, v2.body);
    assert_eq!(post("/sdk/vardata?v=0").await.body, legacy.body);
    let again = get("/sdk/vardata?v=0", KEY).await;
    assert_eq!((again.x_cache(), &again.body), ("HIT", &legacy.body));
    let again = get("/sdk/v2/vardata?v=0", KEY2).await;
    assert_eq!(again.x_cache(), "HIT");
    assert_eq!(upstream.count(), 4);
}

#[tokio::test]
async fn the_flag_keys_header_wins_over_the_query() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let a = auth(KEY);
    let only_a = STANDARD.encode(r#"["a"]"#);
    let ask = |query: &str, header: Option<&str>| {
        let (url, a, c) = (
            gw.url(&format!("/sdk/v2/vardata{query}")),
            a.clone(),
            c.clone(),
        );
        let header = header.map(str::to_string);
        async move {
            let mut headers = vec![("authorization", a.as_str())];
            if let Some(h) = &header {
                headers.push(("x-amp-exp-flag-keys", h.as_str()));
            }
            send(&c, Method::GET, &url, &headers, "").await
        }
    };
    let first = ask("?v=0&flag_key=b,c&flag_keys=d", Some(&only_a)).await;
    assert_eq!(first.x_cache(), "MISS");
    let r = upstream.last();
    assert_eq!(
        r.path_and_query, "/sdk/v2/vardata?v=0",
        "query flag keys are not forwarded"
    );
    assert_eq!(
        r.headers["x-amp-exp-flag-keys"],
        b64url(r#"["a"]"#).as_str()
    );
    assert_eq!(ask("?v=0", Some(&only_a)).await.x_cache(), "HIT");
    assert_eq!(ask("?v=0&flag_key=z", Some(&only_a)).await.x_cache(), "HIT");
    // Without the header the query's list is the list, forwarded the canonical way.
    assert_eq!(ask("?v=0&flag_key=a", None).await.x_cache(), "HIT");
    assert_eq!(ask("?flag_keys=+a+,,a&v=0", None).await.x_cache(), "HIT");
    assert_eq!(ask("?v=0&flag_key=c,b", None).await.x_cache(), "MISS");
    assert_eq!(
        upstream.last().headers["x-amp-exp-flag-keys"],
        b64url(r#"["b","c"]"#).as_str()
    );
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn flags_requests_collapse_and_their_key_parts_do_not() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let spellings = [
        "/sdk/v2/flags?flag_keys=b,a,b",
        "/sdk/v2/flags?flag_keys=a,b",
        "/sdk/v2/flags?junk=1&flag_keys=a%2Cb",
        "/sdk/v2/flags?flag_keys=+b+,a,,",
    ];
    let mut bodies = Vec::new();
    for (i, path) in spellings.iter().enumerate() {
        let got = send(
            &c,
            Method::GET,
            &gw.url(path),
            &[
                ("authorization", &auth(KEY)),
                ("x-amp-exp-library", "experiment-node-server/1.13.6"),
            ],
            "",
        )
        .await;
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(got.x_cache(), if i == 0 { "MISS" } else { "HIT" }, "{path}");
        bodies.push(got.body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    assert_eq!(upstream.count(), 1);
    let r = upstream.last();
    assert_eq!(r.method, Method::GET);
    assert_eq!(r.path_and_query, "/sdk/v2/flags?flag_keys=a,b");
    assert!(r.body.is_empty());
    assert!(r.headers.get("x-amp-exp-library").is_none());
    assert!(r.headers.get("content-type").is_none());
    assert_eq!(
        serde_json::from_slice::<Value>(&bodies[0]).unwrap(),
        json!([{"method": "GET", "path_and_query": "/sdk/v2/flags?flag_keys=a,b", "body": ""}])
    );

    // Each of these is its own entry.
    let distinct = [
        ("/sdk/v2/flags", "/sdk/v2/flags"),
        ("/sdk/v2/flags?v=0", "/sdk/v2/flags?v=0"),
        (
            "/sdk/v2/flags?delivery_method=web",
            "/sdk/v2/flags?delivery_method=web",
        ),
        (
            "/sdk/v2/flags?delivery_method=feature",
            "/sdk/v2/flags?delivery_method=feature",
        ),
        (
            "/sdk/v2/flags?eval_mode=local",
            "/sdk/v2/flags?eval_mode=local",
        ),
        (
            "/sdk/v2/flags?v=0&delivery_method=web&flag_keys=a",
            "/sdk/v2/flags?delivery_method=web&flag_keys=a&v=0",
        ),
        ("/v1/flags", "/v1/flags"),
        ("/v1/flags?flag_keys=b,a", "/v1/flags?flag_keys=a,b"),
    ];
    for (n, (path, forwarded)) in distinct.iter().enumerate() {
        let got = get_with_key(&c, &gw.url(path), KEY).await;
        assert_eq!(got.x_cache(), "MISS", "{path}");
        assert_eq!(upstream.count(), n + 2, "{path}");
        assert_eq!(upstream.last().path_and_query, *forwarded);
    }
    for (path, _) in &distinct {
        assert_eq!(
            get_with_key(&c, &gw.url(path), KEY).await.x_cache(),
            "HIT",
            "{path}"
        );
    }
    assert_eq!(
        get_with_key(&c, &gw.url("/sdk/v2/flags"), KEY2)
            .await
            .x_cache(),
        "MISS"
    );
    let count = upstream.count();

    // A user on a flags request (web experiments) and the cache-buster bypass, verbatim.
    let user = URL_SAFE_NO_PAD.encode(r#"{"user_id":"u1","device_id":"d1"}"#);
    for _ in 0..2 {
        let got = send(
            &c,
            Method::GET,
            &gw.url("/sdk/v2/flags?delivery_method=web"),
            &[("authorization", &auth(KEY)), ("x-amp-exp-user", &user)],
            "",
        )
        .await;
        assert_eq!(got.x_cache(), "BYPASS");
        assert_eq!(upstream.last().headers["x-amp-exp-user"], user.as_str());
        let got = get_with_key(&c, &gw.url("/v1/flags?d=abcde"), KEY).await;
        assert_eq!(got.x_cache(), "BYPASS");
        assert_eq!(upstream.last().path_and_query, "/v1/flags?d=abcde");
    }
    assert_eq!(upstream.count(), count + 4);
}

#[tokio::test]
async fn flags_entries_expire_after_flags_ttl() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.cache.flags_ttl_s = 1;
    let gw = TestGateway::start(config).await;
    let c = client();
    let url = gw.url("/sdk/v2/flags?v=0");
    // Taken before the first request, so no later than the entry's fetch time.
    let start = Instant::now();
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");
    let mut expired = None;
    while start.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = get_with_key(&c, &url, KEY).await;
        if got.x_cache() == "MISS" {
            expired = Some(start.elapsed());
            break;
        }
        assert_eq!(got.x_cache(), "HIT");
    }
    let expired = expired.expect("a flags entry with flags_ttl_s = 1 expires within 3 s");
    assert!(
        expired >= Duration::from_secs(1),
        "expired after {expired:?}"
    );
    assert_eq!(upstream.count(), 2);
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_identical_flags_requests_make_one_upstream_request() {
    let upstream = FakeUpstream::start().await;
    upstream.set_delay(Duration::from_millis(200));
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        // Different spellings of one request, each on its own connection.
        let url = gw.url(["/sdk/v2/flags?flag_keys=a,b", "/sdk/v2/flags?flag_keys=b,a"][i % 2]);
        tasks.push(tokio::spawn(async move {
            get_with_key(&client(), &url, KEY).await
        }));
    }
    let mut bodies = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.status, 200);
        assert_ne!(got.x_cache(), "BYPASS");
        bodies.push(got.body);
    }
    assert!(bodies.iter().all(|b| *b == bodies[0]));
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn a_post_body_over_the_limit_is_413() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.server.max_body_bytes = 1024;
    let gw = TestGateway::start(config).await;
    let c = client();
    let big = format!(
        r#"{{"user_id":"u","user_properties":{{"pad":"{}"}}}}"#,
        "x".repeat(2000)
    );
    let got = send(
        &c,
        Method::POST,
        &gw.url("/sdk/v2/vardata?v=0"),
        &[
            ("authorization", &auth(KEY)),
            ("content-type", "application/json"),
        ],
        &big,
    )
    .await;
    assert_eq!(got.status, 413);
    assert!(
        got.header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    assert!(
        got.json()["error"]
            .as_str()
            .unwrap()
            .contains("max_body_bytes"),
        "{:?}",
        got.body
    );
    assert_eq!(upstream.count(), 0);
    // Just under the limit is fine.
    let small = format!(
        r#"{{"user_id":"u","user_properties":{{"pad":"{}"}}}}"#,
        "x".repeat(900)
    );
    let got = send(
        &c,
        Method::POST,
        &gw.url("/sdk/v2/vardata?v=0"),
        &[("authorization", &auth(KEY))],
        &small,
    )
    .await;
    assert_eq!((got.status.as_u16(), got.x_cache()), (200, "MISS"));
}

/// A private copy of the shipped flags file, removed on drop.
struct FlagsCopy(std::path::PathBuf);

impl FlagsCopy {
    fn new(name: &str) -> FlagsCopy {
        let dir = std::env::temp_dir().join(format!("evalgate-sdk-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("flags.json");
        std::fs::copy(shipped, dir.join("flags.json")).unwrap();
        FlagsCopy(dir)
    }
}

impl Drop for FlagsCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// In front of the embedded engine, every way of asking for a subset of flags gets that
/// subset, as the engine itself answers it.
#[tokio::test]
async fn flags_subsets_through_the_gateway_match_the_engine() {
    let flags = FlagsCopy::new("subset");
    let mut config = config_for("embedded");
    config.embedded.flags_file = flags.0.join("flags.json").display().to_string();
    config.embedded.deployment_keys = vec![KEY.into()];
    let gateway = evalgate::Gateway::new(config.validate().unwrap()).unwrap();
    let engine = gateway.upstream().as_embedded().unwrap().clone();
    let gw = TestGateway::start_gateway(gateway).await;
    let c = client();
    // `flag_key` is not in the key, so a request carrying it goes around the cache.
    for (path, first, second) in [
        ("/sdk/v2/flags?flag_keys=new-dashboard", "MISS", "HIT"),
        ("/sdk/v2/flags?flag_key=new-dashboard", "BYPASS", "BYPASS"),
        (
            "/v1/flags?flag_key=new-dashboard,dashboard-tour",
            "BYPASS",
            "BYPASS",
        ),
        (
            "/v1/flags?flag_keys=dashboard-tour&flag_key=new-dashboard",
            "BYPASS",
            "BYPASS",
        ),
        ("/v1/flags?flag_keys=dashboard-tour", "MISS", "HIT"),
    ] {
        let once = get_with_key(&c, &gw.url(path), KEY).await;
        let through = get_with_key(&c, &gw.url(path), KEY).await;
        assert_eq!(
            (once.x_cache(), through.x_cache()),
            (first, second),
            "{path}"
        );
        assert_eq!(once.body, through.body, "{path}");
        assert_eq!(through.status, 200, "{path}");
        let (parts, _) = http::Request::get(path)
            .header("authorization", auth(KEY))
            .body(())
            .unwrap()
            .into_parts();
        let direct = engine.answer(&http::Request::from_parts(parts, bytes::Bytes::new()));
        let keys = |body: &[u8]| -> Vec<String> {
            let v: Value = serde_json::from_slice(body).unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .map(|f| f["key"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(
            keys(&through.body),
            keys(&direct.body),
            "{path}: {}",
            through.x_cache()
        );
    }
}

/// In front of the embedded engine, SDK vardata requests with unusual flag-key headers get
/// what the engine itself answers.
#[tokio::test]
async fn sdk_flag_key_edge_cases_through_the_gateway_match_the_engine() {
    let flags = FlagsCopy::new("vardata-keys");
    let mut config = config_for("embedded");
    config.embedded.flags_file = flags.0.join("flags.json").display().to_string();
    config.embedded.deployment_keys = vec![KEY.into()];
    let gateway = evalgate::Gateway::new(config.validate().unwrap()).unwrap();
    let engine = gateway.upstream().as_embedded().unwrap().clone();
    let gw = TestGateway::start_gateway(gateway).await;
    let c = client();
    let user = URL_SAFE_NO_PAD.encode(r#"{"user_id":"u1","user_properties":{"plan":"pro"}}"#);
    for (query, list) in [
        ("?v=0", Some(r#"[]"#)),
        ("?v=0&flag_key=new-dashboard", Some(r#"[]"#)),
        ("?v=0", Some(r#"[""]"#)),
        ("?v=0", Some(r#"["new-dashboard",""]"#)),
        ("?v=0", Some(r#"[" new-dashboard"]"#)),
        ("?v=0", Some(r#"["nope"]"#)),
        ("?v=0&flag_key=,", None),
        ("?v=0&flag_key=nope,dashboard-tour", None),
    ] {
        let keys = list.map(|l| STANDARD.encode(l));
        let mut headers = vec![
            ("authorization", auth(KEY)),
            ("x-amp-exp-user", user.clone()),
        ];
        if let Some(k) = &keys {
            headers.push(("x-amp-exp-flag-keys", k.clone()));
        }
        let path = format!("/sdk/v2/vardata{query}");
        let h: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let through = send(&c, Method::GET, &gw.url(&path), &h, "").await;
        assert_eq!(through.status, 200, "{query} {list:?}");
        let mut request = http::Request::get(&path);
        for (n, v) in &headers {
            request = request.header(*n, v);
        }
        let direct = engine.answer(&request.body(bytes::Bytes::new()).unwrap());
        let direct: Value = serde_json::from_slice(&direct.body).unwrap();
        assert_eq!(
            through.json(),
            direct,
            "{query} {list:?} ({})",
            through.x_cache()
        );
    }
}

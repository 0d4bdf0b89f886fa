//! `/v1/vardata` through the gateway: key canonicalization, hits, isolation, coalescing.

mod support;

use support::*;

#[tokio::test]
async fn second_identical_request_is_a_hit() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=u1&flag_key=a");
    let first = get_with_key(&c, &url, KEY).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.x_cache(), "MISS");
    assert_eq!(first.header("age"), Some("0"));
    let second = get_with_key(&c, &url, KEY).await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("content-type"), Some("application/json"));
    assert_eq!(upstream.count(), 1);
}

/// Percent-encodes like JavaScript's `encodeURIComponent`.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Rewrites every `%XX` escape with lower-case hex digits.
fn lower_hex(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        out.push_str(&rest[i..i + 3].to_lowercase());
        rest = &rest[i + 3..];
    }
    out + rest
}

#[tokio::test]
async fn ten_spellings_of_one_request_make_one_upstream_request() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let ctx_sorted = r#"{"country":"DE","user_properties":{"plan":"pro","seats":3}}"#;
    let ctx_reordered = r#"{"user_properties":{"seats":3,"plan":"pro"},"country":"DE"}"#;
    let ctx_pretty = "{\n  \"user_properties\": {\n    \"seats\": 3,\n    \"plan\": \"pro\"\n  },\n  \"country\": \"DE\"\n}";
    let ctx_nulls =
        r#"{"country":"DE","city":null,"user_properties":{"plan":"pro","seats":3,"old":null}}"#;
    let spellings = [
        format!(
            "user_id=u%201&device_id=d1&flag_key=a,b&context={}",
            enc(ctx_sorted)
        ),
        format!(
            "context={}&flag_key=a,b&device_id=d1&user_id=u%201",
            enc(ctx_sorted)
        ),
        format!(
            "device_id=d1&user_id=u+1&context={}&flag_keys=b,a",
            enc(ctx_reordered)
        ),
        format!(
            "user_id=u%201&device_id=d1&flag_key=b%2Ca&context={}",
            enc(ctx_pretty)
        ),
        format!(
            "user%5Fid=u%201&device_id=d1&flag_keys=%20a%20,b,,a&context={}",
            enc(ctx_nulls)
        ),
        format!(
            "user_id=u%201&device_id=d1&flag_key=a&flag_keys=b&context={}",
            lower_hex(&enc(ctx_sorted))
        ),
        format!(
            "user_id=u%201&device_id=d1&flag_key=a,b&context={}",
            enc(ctx_sorted)
                .replace("%7B", "%7b")
                .replace("%7D", "%7d")
                .replace("%3A", "%3a")
        ),
        format!(
            "user_id=u%201&device_id=d1&flag_key=a,b&utm_source=x&context={}",
            enc(ctx_reordered)
        ),
        format!(
            "user_id=u%201&device_id=d1&flag_key=a,b&context={}&random=123",
            enc(ctx_pretty)
        ),
        format!(
            "device_id=d1&flag_key=a,b&user_id=u%201&context={}",
            enc(ctx_nulls)
        ),
    ];
    let mut bodies = Vec::new();
    for (i, q) in spellings.iter().enumerate() {
        let got = get_with_key(&c, &gw.url(&format!("/v1/vardata?{q}")), KEY).await;
        assert_eq!(got.status, 200, "spelling {i}: {q}");
        assert_eq!(
            got.x_cache(),
            if i == 0 { "MISS" } else { "HIT" },
            "spelling {i}: {q}"
        );
        bodies.push(got.body);
    }
    assert_eq!(upstream.count(), 1);
    assert!(bodies.iter().all(|b| *b == bodies[0]));
}

/// Python's `json.dumps` escapes non-ASCII (and PHP escapes `/`); JavaScript's
/// `JSON.stringify` writes both raw. The same user from each is one entry.
#[tokio::test]
async fn string_escapes_in_context_make_one_upstream_request() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let python = r#"{"user_id": "u1", "user_properties": {"city": "Z\u00fcrich", "mood": "\ud83d\ude00", "home": "https:\/\/x.example\/", "o": {"\u006b": "\u0070ro"}}}"#;
    let javascript = r#"{"user_id":"u1","user_properties":{"city":"Zürich","mood":"😀","home":"https://x.example/","o":{"k":"pro"}}}"#;
    let first = get_with_key(
        &c,
        &gw.url(&format!("/v1/vardata?context={}", enc(python))),
        KEY,
    )
    .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.x_cache(), "MISS");
    let second = get_with_key(
        &c,
        &gw.url(&format!("/v1/vardata?context={}", enc(javascript))),
        KEY,
    )
    .await;
    assert_eq!(second.x_cache(), "HIT");
    assert_eq!(second.body, first.body);
    assert_eq!(upstream.count(), 1);
    // The upstream was asked with the canonical string: raw UTF-8, `/` unescaped.
    let forwarded = upstream.last().path_and_query;
    let context = forwarded
        .split('&')
        .find_map(|p| p.split_once("context="))
        .map(|(_, v)| v)
        .expect("context forwarded");
    let context = percent_decode(context);
    assert_eq!(
        context,
        r#"{"user_id":"u1","user_properties":{"city":"Zürich","home":"https://x.example/","mood":"😀","o":{"k":"pro"}}}"#
    );
}

/// Decodes `%XX` escapes (the canonical query encodes everything but unreserved bytes).
fn percent_decode(s: &str) -> String {
    let mut bytes = Vec::new();
    let mut rest = s.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            let hex = std::str::from_utf8(&tail[..2]).unwrap();
            bytes.push(u8::from_str_radix(hex, 16).unwrap());
            rest = &tail[2..];
        } else {
            bytes.push(b);
            rest = tail;
        }
    }
    String::from_utf8(bytes).unwrap()
}

#[tokio::test]
async fn requests_that_differ_in_meaning_never_share_an_entry() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let ctx = |s: &str| format!("/v1/vardata?user_id=u&context={}", enc(s));
    // (path, key, X-Amp-Exp-Track)
    let variants: Vec<(String, &str, Option<&str>)> = vec![
        ("/v1/vardata?user_id=u".into(), KEY, None),
        ("/v1/vardata?user_id=v".into(), KEY, None),
        ("/v1/vardata?user_id=u&device_id=d".into(), KEY, None),
        ("/v1/vardata?user_id=u&flag_key=a".into(), KEY, None),
        ("/v1/vardata?user_id=u&flag_key=a,b".into(), KEY, None),
        (ctx(r#"{"user_properties":{"n":"1"}}"#), KEY, None),
        (ctx(r#"{"user_properties":{"n":1}}"#), KEY, None),
        (ctx(r#"{"user_properties":{"n":1.0}}"#), KEY, None),
        (ctx(r#"{"user_properties":{"o":{"a":1,"b":2}}}"#), KEY, None),
        (ctx(r#"{"user_properties":{"o":{"b":2,"a":1}}}"#), KEY, None),
        (ctx(r#"{"user_properties":{"l":[1,2]}}"#), KEY, None),
        (ctx(r#"{"user_properties":{"l":[2,1]}}"#), KEY, None),
        ("/v1/vardata?user_id=u".into(), KEY2, None),
        ("/v1/vardata?user_id=u".into(), KEY, Some("no-track")),
        ("/v1/vardata?user_id=u".into(), KEY, Some("track")),
    ];
    for (i, (path, key, track)) in variants.iter().enumerate() {
        let auth = format!("Api-Key {key}");
        let mut headers = vec![("authorization", auth.as_str())];
        if let Some(t) = track {
            headers.push(("x-amp-exp-track", t));
        }
        let got = send(&c, http::Method::GET, &gw.url(path), &headers, "").await;
        assert_eq!(got.status, 200, "{path}");
        assert_eq!(
            got.x_cache(),
            "MISS",
            "variant {i} shared an entry: {path} {key} {track:?}"
        );
    }
    assert_eq!(upstream.count(), variants.len());
    // The track header and key went upstream as sent.
    let reqs = upstream.requests();
    assert_eq!(
        reqs[12].headers["authorization"],
        format!("Api-Key {KEY2}").as_str()
    );
    assert_eq!(reqs[13].headers["x-amp-exp-track"], "no-track");
    assert!(reqs[0].headers.get("x-amp-exp-track").is_none());
}

#[tokio::test]
async fn concurrent_identical_misses_make_one_upstream_request() {
    let upstream = FakeUpstream::start().await;
    upstream.set_delay(std::time::Duration::from_millis(200));
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let url = gw.url("/v1/vardata?user_id=burst&flag_key=a");
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let url = url.clone();
        // One client (and connection) per request, as independent apps would.
        tasks.push(tokio::spawn(async move {
            get_with_key(&client(), &url, KEY).await
        }));
    }
    let mut bodies = Vec::new();
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.status, 200);
        bodies.push(got.body);
    }
    assert_eq!(upstream.count(), 1);
    assert!(bodies.iter().all(|b| *b == bodies[0]));
}

#[tokio::test]
async fn coalesced_errors_reach_every_waiter_and_are_not_stored() {
    let upstream = FakeUpstream::start().await;
    upstream.set_delay(std::time::Duration::from_millis(100));
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let url = gw.url("/v1/vardata?user_id=x");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            get_with_key(&client(), &url, "server-unknown-9999").await
        }));
    }
    for t in tasks {
        let got = t.await.unwrap();
        assert_eq!(got.status, 401);
        assert_eq!(&got.body[..], b"Invalid deployment key\n");
    }
    assert_eq!(upstream.count(), 1);
    let again = get_with_key(&client(), &url, "server-unknown-9999").await;
    assert_eq!(again.status, 401);
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn a_waiter_is_answered_when_the_first_client_hangs_up() {
    let upstream = FakeUpstream::start().await;
    upstream.set_delay(std::time::Duration::from_millis(300));
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let url = gw.url("/v1/vardata?user_id=leader");
    let leader = {
        let url = url.clone();
        tokio::spawn(async move { get_with_key(&client(), &url, KEY).await })
    };
    upstream.wait_for(1).await;
    let follower = {
        let url = url.clone();
        tokio::spawn(async move { get_with_key(&client(), &url, KEY).await })
    };
    // The first client goes away while its request is in flight upstream.
    leader.abort();
    let got = follower.await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(upstream.count(), 1);
    assert_eq!(get_with_key(&client(), &url, KEY).await.x_cache(), "HIT");
}

#[tokio::test]
async fn a_fetch_every_client_left_still_lands_and_is_stored() {
    let upstream = FakeUpstream::start().await;
    upstream.set_delay(std::time::Duration::from_millis(300));
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let url = gw.url("/v1/vardata?user_id=everyone-left");
    let clients: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get_with_key(&client(), &url, KEY).await })
        })
        .collect();
    upstream.wait_for(1).await;
    // Every client goes away while the one upstream request is in flight.
    for c in clients {
        c.abort();
        assert!(c.await.unwrap_err().is_cancelled());
    }
    // The fetch was not cancelled with them: the next request joins it or finds its
    // answer stored, and the upstream is not asked again.
    let got = get_with_key(&client(), &url, KEY).await;
    assert_eq!(got.status, 200);
    assert_eq!(get_with_key(&client(), &url, KEY).await.x_cache(), "HIT");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn only_the_canonical_request_reaches_the_upstream() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let auth = format!("api-key   {KEY} ");
    let got = send(
        &c,
        http::Method::GET,
        &gw.url("/v1/vardata?utm=1&user_id=u&flag_keys=b,a&x=%FF&context=%7B%22a%22%3A1%7D"),
        &[
            ("authorization", auth.as_str()),
            ("cookie", "session=secret"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-custom", "1"),
            ("x-amp-exp-track", "no-track"),
        ],
        "",
    )
    .await;
    assert_eq!(got.status, 200);
    let r = upstream.last();
    assert_eq!(r.method, http::Method::GET);
    assert_eq!(
        r.path_and_query,
        "/v1/vardata?context=%7B%22a%22%3A1%7D&flag_key=a,b&flag_keys=a,b&user_id=u"
    );
    let mut names: Vec<&str> = r.headers.keys().map(|n| n.as_str()).collect();
    names.sort();
    // `accept-encoding: gzip` is evalgate's constant (`compression.upstream_gzip`).
    assert_eq!(
        names,
        [
            "accept",
            "accept-encoding",
            "authorization",
            "host",
            "user-agent",
            "x-amp-exp-track"
        ]
    );
    assert_eq!(
        r.headers["authorization"],
        format!("Api-Key {KEY}").as_str()
    );
    assert_eq!(r.headers["accept"], "application/json");
    assert!(
        r.headers["user-agent"]
            .to_str()
            .unwrap()
            .starts_with("evalgate/")
    );
}

#[tokio::test]
async fn cache_busters_and_exposure_tracking_bypass_the_cache() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let auth = format!("Api-Key {KEY}");
    let url = gw.url("/v1/vardata?user_id=u");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");
    for _ in 0..2 {
        let busted = get_with_key(&c, &gw.url("/v1/vardata?user_id=u&d=abcde"), KEY).await;
        assert_eq!(busted.status, 200);
        assert_eq!(busted.x_cache(), "BYPASS");
        let exposure = send(
            &c,
            http::Method::GET,
            &url,
            &[
                ("authorization", &auth),
                ("x-amp-exp-exposure-track", "track"),
            ],
            "",
        )
        .await;
        assert_eq!(exposure.x_cache(), "BYPASS");
        assert_eq!(exposure.header("age"), Some("0"));
    }
    assert_eq!(upstream.count(), 5);
    // Bypassed requests go upstream verbatim: the exposure header reaches it.
    assert_eq!(upstream.last().headers["x-amp-exp-exposure-track"], "track");
    assert_eq!(
        upstream.requests()[3].path_and_query,
        "/v1/vardata?user_id=u&d=abcde"
    );
}

#[tokio::test]
async fn other_paths_are_forwarded_as_is() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    for _ in 0..2 {
        let got = send(
            &c,
            http::Method::POST,
            &gw.url("/sdk/v2/vardata?v=0&x=1"),
            &[
                ("content-type", "application/json"),
                ("x-custom", "yes"),
                ("connection", "keep-alive, x-hop"),
                ("x-hop", "1"),
            ],
            r#"{"user_id":"u"}"#,
        )
        .await;
        assert_eq!(got.status, 200);
        assert_eq!(got.x_cache(), "BYPASS");
        assert_eq!(got.header("x-upstream-header"), Some("kept"));
        assert_eq!(got.json()["path_and_query"], "/sdk/v2/vardata?v=0&x=1");
        assert_eq!(got.json()["body"], r#"{"user_id":"u"}"#);
    }
    assert_eq!(upstream.count(), 2);
    let r = upstream.last();
    assert_eq!(r.method, http::Method::POST);
    assert_eq!(r.headers["x-custom"], "yes");
    assert!(
        r.headers.get("x-hop").is_none(),
        "headers named by Connection are hop-by-hop"
    );
}

#[tokio::test]
async fn head_is_answered_from_the_same_entry_without_a_body() {
    let upstream = FakeUpstream::start().await;
    let gw = TestGateway::start(config_for(&upstream.url())).await;
    let c = client();
    let url = gw.url("/v1/vardata?user_id=h");
    let got = get_with_key(&c, &url, KEY).await;
    let auth = format!("Api-Key {KEY}");
    let head = send(
        &c,
        http::Method::HEAD,
        &url,
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.x_cache(), "HIT");
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(got.body.len().to_string().as_str())
    );
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn a_full_cache_still_stores_a_fresh_answer() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.cache.max_bytes = 64 * 1024;
    let gw = TestGateway::start(config).await;
    let c = client();
    // Fill the cache well past its bound (each entry weighs ~1.3 KiB with bookkeeping).
    for i in 0..400 {
        let got = get_with_key(&c, &gw.url(&format!("/v1/vardata?user_id=filler-{i}")), KEY).await;
        assert_eq!(got.status, 200);
    }
    // LRU eviction: the newest answer is kept, so asking again is a hit.
    let url = gw.url("/v1/vardata?user_id=newcomer");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "MISS");
    assert_eq!(get_with_key(&c, &url, KEY).await.x_cache(), "HIT");
    assert_eq!(upstream.count(), 401);
}

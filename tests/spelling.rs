//! The spelling memo end to end: a `/v1/vardata` spelling that hit is answered from its
//! entry without normalizing again, and nothing else is ever answered from that entry.

mod support;

use http::{Method, StatusCode};
use support::*;

const PATH: &str = "/v1/vardata?user_id=memo&flag_key=b,a&context=%7B%22n%22%3A%221%22%7D";

async fn get(c: &Client, url: &str, headers: &[(&str, &str)]) -> Got {
    send(c, Method::GET, url, headers, "").await
}

async fn with_admin(config: evalgate::Config) -> TestGateway {
    let gateway = evalgate::Gateway::new(config.validate().unwrap()).unwrap();
    TestGateway::start_with_admin(gateway).await
}

/// `evalgate_spelling_memo_hits_total` from the admin listener.
async fn memo_hits(gw: &TestGateway) -> u64 {
    let got = send(&client(), Method::GET, &gw.admin_url("/metrics"), &[], "").await;
    let text = String::from_utf8(got.body.to_vec()).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("evalgate_spelling_memo_hits_total "))
        .expect("the memo counter is exported")
        .parse()
        .unwrap()
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

#[tokio::test]
async fn a_remembered_spelling_is_still_told_apart_from_every_other() {
    let upstream = FakeUpstream::start().await;
    let gw = with_admin(config_for(&upstream.url())).await;
    let c = client();
    let url = gw.url(PATH);
    let auth = format!("Api-Key {KEY}");
    let auth2 = format!("Api-Key {KEY2}");

    // A miss, then a hit (which remembers the spelling), then hits through the memo.
    let first = get(&c, &url, &[("authorization", &auth)]).await;
    assert_eq!(first.x_cache(), "MISS");
    for _ in 0..3 {
        let hit = get(&c, &url, &[("authorization", &auth)]).await;
        assert_eq!(hit.x_cache(), "HIT");
        assert_eq!(hit.body, first.body);
    }
    assert_eq!(upstream.count(), 1);
    // The first hit was normalized (and remembered the spelling); the next two were not.
    assert_eq!(memo_hits(&gw).await, 2);

    // The same query with anything the key reads spelled otherwise is its own request.
    let other_key = get(&c, &url, &[("authorization", &auth2)]).await;
    assert_eq!(other_key.x_cache(), "MISS");
    assert_eq!(upstream.last().headers["authorization"], auth2.as_str());
    let tracked = get(
        &c,
        &url,
        &[("authorization", &auth), ("x-amp-exp-track", "track")],
    )
    .await;
    assert_eq!(tracked.x_cache(), "MISS");
    assert_eq!(upstream.last().headers["x-amp-exp-track"], "track");
    let exposure = get(
        &c,
        &url,
        &[
            ("authorization", &auth),
            ("x-amp-exp-exposure-track", "track"),
        ],
    )
    .await;
    assert_eq!(exposure.x_cache(), "BYPASS");
    let no_key = get(&c, &url, &[]).await;
    assert_eq!(no_key.x_cache(), "BYPASS");
    assert_eq!(no_key.status, StatusCode::UNAUTHORIZED);
    let repeated = get(
        &c,
        &url,
        &[("authorization", &auth), ("authorization", &auth2)],
    )
    .await;
    assert_eq!(repeated.x_cache(), "BYPASS");
    assert_eq!(upstream.count(), 6);

    // Another spelling of the same question still shares the entry (by normalization).
    let reordered = gw.url("/v1/vardata?flag_key=a,b&context=%7B%22n%22:%221%22%7D&user_id=memo");
    let same = get(&c, &reordered, &[("authorization", &auth)]).await;
    assert_eq!(same.x_cache(), "HIT");
    assert_eq!(same.body, first.body);
    assert_eq!(upstream.count(), 6);
    // None of the other spellings came from the memo.
    assert_eq!(memo_hits(&gw).await, 2);
}

#[tokio::test]
async fn with_the_memo_off_every_request_is_normalized_and_hits_alike() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.cache.spelling_memo_entries = 0;
    let gw = with_admin(config).await;
    let c = client();
    let url = gw.url(PATH);
    let auth = format!("Api-Key {KEY}");
    assert_eq!(
        get(&c, &url, &[("authorization", &auth)]).await.x_cache(),
        "MISS"
    );
    for _ in 0..3 {
        assert_eq!(
            get(&c, &url, &[("authorization", &auth)]).await.x_cache(),
            "HIT"
        );
    }
    assert_eq!(upstream.count(), 1);
    assert_eq!(memo_hits(&gw).await, 0);
}

#[tokio::test]
async fn a_limit_lowered_by_a_reload_applies_to_a_remembered_spelling() {
    let upstream = FakeUpstream::start().await;
    let config = config_for(&upstream.url()).validate().unwrap();
    let gateway = evalgate::Gateway::new(config.clone()).unwrap();
    let gw = TestGateway::start_with_admin(gateway.clone()).await;
    let c = client();
    let url = gw.url(PATH);
    let auth = format!("Api-Key {KEY}");
    assert_eq!(
        get(&c, &url, &[("authorization", &auth)]).await.x_cache(),
        "MISS"
    );
    assert_eq!(
        get(&c, &url, &[("authorization", &auth)]).await.x_cache(),
        "HIT"
    );

    // The decoded context ({"n":"1"}) is 9 bytes; a bound of 8 turns it away.
    let mut lowered = config.clone();
    lowered.server.max_context_bytes = 8;
    let report = evalgate::reload::apply(&gateway, &lowered, None);
    assert_eq!(report.applied, ["server.max_context_bytes"]);
    let refused = get(&c, &url, &[("authorization", &auth)]).await;
    assert_eq!(refused.status, StatusCode::URI_TOO_LONG);
    assert_eq!(upstream.count(), 1);
}

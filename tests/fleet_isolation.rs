//! Isolation in a fleet sharing one Redis (issue 13): two deployment keys never share an
//! entry on any instance, two fleets with different namespaces never share one, and a
//! remembered 401 is shared under its own key only.

mod support;

use http::{Method, StatusCode};
use support::fleet::{Fleet, cache_and_tier, fleet_config};
use support::redis::RedisServer;
use support::*;

#[tokio::test]
async fn two_deployment_keys_never_share_an_entry_on_any_instance() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let fleet = Fleet::start(4, &fleet_config(&upstream.url(), &redis.url())).await;
    let c = client();
    let path = "/v1/vardata?user_id=fleet-same-user";

    let one = get_with_key(&c, &fleet.url(0, path), KEY).await;
    let two = get_with_key(&c, &fleet.url(1, path), KEY2).await;
    for (got, key) in [(&one, KEY), (&two, KEY2)] {
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(
            cache_and_tier(got),
            ("MISS".into(), "upstream".into()),
            "{key}"
        );
        assert_eq!(got.json()["flag-echo"]["payload"]["key"], key);
    }
    assert_eq!(
        upstream.count(),
        2,
        "one upstream request per deployment key"
    );

    for i in 0..fleet.len() {
        for (key, expected) in [(KEY, &one), (KEY2, &two)] {
            let got = get_with_key(&c, &fleet.url(i, path), key).await;
            assert_eq!(got.status, StatusCode::OK, "instance {i}, {key}");
            assert_eq!(got.x_cache(), "HIT", "instance {i}, {key}");
            assert_eq!(got.body, expected.body, "instance {i}, {key}");
        }
    }
    assert_eq!(upstream.count(), 2);

    // The same on an SDK route, whose answers do not name the key: the upstream is asked
    // once per key.
    let sdk = |key: &str| {
        let (c, url) = (c.clone(), fleet.url(2, "/sdk/v2/vardata?v=0"));
        let auth = format!("Api-Key {key}");
        async move {
            let headers = [
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ];
            send(
                &c,
                Method::POST,
                &url,
                &headers,
                r#"{"user_id":"fleet-same-user"}"#,
            )
            .await
        }
    };
    assert_eq!(sdk(KEY).await.x_cache(), "MISS");
    assert_eq!(sdk(KEY2).await.x_cache(), "MISS");
    assert_eq!(upstream.count(), 4);
    let forwarded: Vec<String> = upstream.requests()[2..]
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        forwarded,
        [format!("Api-Key {KEY}"), format!("Api-Key {KEY2}")]
    );
}

#[tokio::test]
async fn two_fleets_with_different_namespaces_on_one_redis_never_share() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let in_namespace = |ns: &str| {
        let mut config = fleet_config(&upstream.url(), &redis.url());
        config.shared_cache.namespace = ns.to_string();
        config
    };
    let blue = Fleet::start(2, &in_namespace("blue")).await;
    let green = Fleet::start(2, &in_namespace("green")).await;
    let c = client();
    let path = "/v1/vardata?user_id=fleet-ns";

    let b = get_with_key(&c, &blue.url(0, path), KEY).await;
    assert_eq!(cache_and_tier(&b), ("MISS".into(), "upstream".into()));
    blue.await_ops("write", "ok", 1).await;
    let g = get_with_key(&c, &green.url(0, path), KEY).await;
    assert_eq!(
        cache_and_tier(&g),
        ("MISS".into(), "upstream".into()),
        "green does not see blue's entry"
    );
    assert_eq!(upstream.count(), 2, "each fleet asked the upstream");
    green.await_ops("write", "ok", 1).await;

    // Within a fleet the entry is shared.
    for (fleet, first) in [(&blue, &b), (&green, &g)] {
        let got = get_with_key(&c, &fleet.url(1, path), KEY).await;
        assert_eq!(cache_and_tier(&got), ("HIT".into(), "l2".into()));
        assert_eq!(got.body, first.body);
    }
    assert_eq!(upstream.count(), 2);

    // Every name is under one namespace or the other; one value each.
    let keys = redis.keys();
    assert!(
        keys.keys()
            .all(|k| k.starts_with("blue:") || k.starts_with("green:")),
        "{keys:#?}"
    );
    for ns in ["blue:", "green:"] {
        let values = keys
            .keys()
            .filter(|k| k.starts_with(ns) && k.ends_with(":v"))
            .count();
        assert_eq!(values, 1, "{ns} {keys:#?}");
    }
}

#[tokio::test]
async fn a_remembered_401_is_shared_under_its_own_key_only() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let mut config = fleet_config(&upstream.url(), &redis.url());
    config.cache.negative_ttl_s = 30;
    let fleet = Fleet::start(2, &config).await;
    let c = client();
    let path = "/v1/vardata?user_id=fleet-denied";
    let bad = "server-unknown-key-0401";

    let first = get_with_key(&c, &fleet.url(0, path), bad).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    assert_eq!(cache_and_tier(&first), ("MISS".into(), "upstream".into()));
    assert_eq!(upstream.count(), 1);

    let shared = get_with_key(&c, &fleet.url(1, path), bad).await;
    assert_eq!(shared.status, StatusCode::UNAUTHORIZED);
    assert_eq!(cache_and_tier(&shared), ("HIT".into(), "l2".into()));
    assert_eq!(shared.body, first.body);
    assert_eq!(shared.header("content-type"), first.header("content-type"));
    let local = get_with_key(&c, &fleet.url(1, path), bad).await;
    assert_eq!(local.status, StatusCode::UNAUTHORIZED);
    assert_eq!(cache_and_tier(&local), ("HIT".into(), "l1".into()));
    assert_eq!(upstream.count(), 1, "B never asked the upstream");

    // The 401 is the bad key's: a good key on the same request is asked upstream.
    let good = get_with_key(&c, &fleet.url(1, path), KEY).await;
    assert_eq!(good.status, StatusCode::OK);
    assert_eq!(cache_and_tier(&good), ("MISS".into(), "upstream".into()));
    assert_eq!(upstream.count(), 2);
}

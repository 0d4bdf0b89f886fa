//! Every cacheable route is shared across a fleet (issue 13): what one instance fetched is
//! another's `HIT` from `l2` with the same body and an `Age` counted from the original
//! fetch, then that instance's own `l1` hit. Without `[shared_cache]` no answer names a
//! tier.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Method, StatusCode};
use serde_json::json;
use support::fleet::{Fleet, cache_and_tier, fleet_config};
use support::redis::RedisServer;
use support::*;

/// One request as a client sends it.
struct Ask {
    route: &'static str,
    method: Method,
    path: &'static str,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Ask {
    async fn on(&self, c: &Client, url: String) -> Got {
        let headers: Vec<(&str, &str)> =
            self.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        send(c, self.method.clone(), &url, &headers, &self.body).await
    }
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

/// One request on each cacheable route, as tests/sdk.rs builds them. The two SDK vardata
/// requests ask for different users: a GET and a POST for one user are one entry.
fn every_route() -> Vec<Ask> {
    let auth = || ("authorization", format!("Api-Key {KEY}"));
    let user_header = URL_SAFE_NO_PAD.encode(r#"{"user_id":"fleet-sdk-get","device_id":"d1"}"#);
    vec![
        Ask {
            route: "/v1/vardata GET",
            method: Method::GET,
            path: "/v1/vardata?user_id=fleet-v1&flag_key=a",
            headers: vec![auth()],
            body: String::new(),
        },
        Ask {
            route: "/sdk/v2/vardata GET",
            method: Method::GET,
            path: "/sdk/v2/vardata?v=0",
            headers: vec![auth(), ("x-amp-exp-user", user_header)],
            body: String::new(),
        },
        Ask {
            route: "/sdk/v2/vardata POST",
            method: Method::POST,
            path: "/sdk/v2/vardata?v=0",
            headers: vec![auth(), ("content-type", "application/json".into())],
            body: r#"{"user_id":"fleet-sdk-post","user_properties":{"plan":"pro"}}"#.into(),
        },
        Ask {
            route: "/sdk/v2/flags GET",
            method: Method::GET,
            path: "/sdk/v2/flags?flag_keys=a,b",
            headers: vec![auth()],
            body: String::new(),
        },
    ]
}

#[tokio::test]
async fn every_cacheable_route_fetched_on_one_instance_is_a_shared_hit_on_another() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let fleet = Fleet::start(3, &fleet_config(&upstream.url(), &redis.url())).await;
    let c = client();

    for (n, ask) in every_route().iter().enumerate() {
        let route = ask.route;
        let first = ask.on(&c, fleet.url(0, ask.path)).await;
        assert_eq!(first.status, StatusCode::OK, "{route}: {first:?}");
        assert_eq!(cache_and_tier(&first), ("MISS".into(), "upstream".into()));
        assert_eq!(upstream.count(), n + 1, "{route}: one upstream request");

        let second = ask.on(&c, fleet.url(1, ask.path)).await;
        assert_eq!(second.status, StatusCode::OK, "{route}");
        assert_eq!(
            cache_and_tier(&second),
            ("HIT".into(), "l2".into()),
            "{route}"
        );
        assert_eq!(second.body, first.body, "{route}");
        assert_eq!(second.header("content-type"), first.header("content-type"));

        // Each instance then answers from its own memory; the third from Redis.
        let again = ask.on(&c, fleet.url(1, ask.path)).await;
        assert_eq!(
            cache_and_tier(&again),
            ("HIT".into(), "l1".into()),
            "{route}"
        );
        let own = ask.on(&c, fleet.url(0, ask.path)).await;
        assert_eq!(cache_and_tier(&own), ("HIT".into(), "l1".into()), "{route}");
        let third = ask.on(&c, fleet.url(2, ask.path)).await;
        assert_eq!(
            cache_and_tier(&third),
            ("HIT".into(), "l2".into()),
            "{route}"
        );
        for got in [&again, &own, &third] {
            assert_eq!(got.body, first.body, "{route}");
        }
        assert_eq!(
            upstream.count(),
            n + 1,
            "{route}: still one upstream request"
        );
    }

    // One upstream request per route, each the canonical one for its route.
    let asked: Vec<(Method, String)> = upstream
        .requests()
        .into_iter()
        .map(|r| (r.method, r.path_and_query))
        .collect();
    assert_eq!(asked.len(), 4, "{asked:?}");
    assert_eq!(asked[1], (Method::POST, "/sdk/v2/vardata?v=0".into()));
    assert_eq!(asked[2], (Method::POST, "/sdk/v2/vardata?v=0".into()));
    assert_eq!(
        asked[3],
        (Method::GET, "/sdk/v2/flags?flag_keys=a,b".into())
    );
    assert_eq!(
        upstream.requests()[1].body,
        r#"{"device_id":"d1","user_id":"fleet-sdk-get"}"#.as_bytes()
    );
}

#[tokio::test]
async fn a_shared_hit_counts_its_age_from_the_original_fetch() {
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    upstream.update(|s| s.cache_control = Some("max-age=60"));
    let fleet = Fleet::start(2, &fleet_config(&upstream.url(), &redis.url())).await;
    let c = client();
    let path = "/v1/vardata?user_id=fleet-age";

    let fetched = Instant::now();
    let first = get_with_key(&c, &fleet.url(0, path), KEY).await;
    assert_eq!(cache_and_tier(&first), ("MISS".into(), "upstream".into()));
    assert_eq!(first.header("age"), Some("0"));
    // The value is in Redis before the clock starts to matter.
    fleet.await_ops("write", "ok", 1).await;

    // `Age` is in whole seconds: nothing to await but time passing.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let shared = get_with_key(&c, &fleet.url(1, path), KEY).await;
    let elapsed = fetched.elapsed().as_secs();
    assert_eq!(cache_and_tier(&shared), ("HIT".into(), "l2".into()));
    assert_eq!(shared.body, first.body);
    let age = |got: &Got| -> u64 { got.header("age").expect("Age").parse().unwrap() };
    assert!(
        (1..=elapsed).contains(&age(&shared)),
        "Age {} after {elapsed} s",
        age(&shared)
    );

    // B keeps the entry with its original fetch time.
    let local = get_with_key(&c, &fleet.url(1, path), KEY).await;
    assert_eq!(cache_and_tier(&local), ("HIT".into(), "l1".into()));
    assert!(age(&local) >= age(&shared), "Age {}", age(&local));
    assert!(age(&local) <= fetched.elapsed().as_secs());
    assert_eq!(local.body, first.body);
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn without_a_shared_tier_no_answer_names_a_tier() {
    let upstream = FakeUpstream::start().await;
    let mut config = config_for(&upstream.url());
    config.cache.negative_ttl_s = 30;
    let gw = TestGateway::start(config).await;
    let c = client();
    let mut seen = Vec::new();
    for ask in every_route() {
        for _ in 0..2 {
            seen.push(ask.on(&c, gw.url(ask.path)).await);
        }
    }
    // A 401 (then remembered), a passthrough, a request that bypasses the cache.
    for _ in 0..2 {
        seen.push(get_with_key(&c, &gw.url("/v1/vardata?user_id=u"), "no-such-key").await);
    }
    seen.push(get_with_key(&c, &gw.url("/v1/other"), KEY).await);
    seen.push(get_with_key(&c, &gw.url("/v1/vardata?user_id=u&context=%7B"), KEY).await);

    let caches: Vec<&str> = seen.iter().map(|g| g.x_cache()).collect();
    assert_eq!(
        caches,
        [
            "MISS", "HIT", "MISS", "HIT", "MISS", "HIT", "MISS", "HIT", "MISS", "HIT", "BYPASS",
            "BYPASS"
        ],
        "{seen:#?}"
    );
    let statuses: Vec<u16> = seen[8..].iter().map(|g| g.status.as_u16()).collect();
    assert_eq!(statuses, [401, 401, 200, 400], "{seen:#?}");
    for got in &seen {
        assert!(got.header("x-cache-tier").is_none(), "{got:?}");
    }
    assert_eq!(
        seen[0].json()["flag-echo"]["payload"]["query"],
        json!("flag_key=a&flag_keys=a&user_id=fleet-v1")
    );
}

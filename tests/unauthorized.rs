//! Remembered 401s (`cache.negative_ttl_s`) are scoped to one deployment key on one route:
//! a key refused on one endpoint may be accepted on another, and a purge of the key drops
//! what is remembered for it on every route.

mod support;

use evalgate::Gateway;
use evalgate::gateway::PurgeScope;
use http::StatusCode;
use support::*;

const FLAGS: &str = "/sdk/v2/flags?v=0";
const VARDATA: &str = "/v1/vardata?user_id=u";

/// A gateway remembering 401s for 30 s, and a handle on it for purges.
async fn start(upstream: &FakeUpstream) -> (Gateway, TestGateway) {
    let mut config = config_for(&upstream.url());
    config.cache.negative_ttl_s = 30;
    let gateway = Gateway::new(config.validate().unwrap()).unwrap();
    let gw = TestGateway::start_gateway(gateway.clone()).await;
    (gateway, gw)
}

/// Makes the upstream refuse every request while `path` is asked for with [`KEY`], so the
/// gateway remembers that 401; the upstream answers normally again afterwards.
async fn refused_once(upstream: &FakeUpstream, gw: &TestGateway, path: &str) {
    upstream.update(|s| s.status = Some(StatusCode::UNAUTHORIZED));
    let got = get_with_key(&client(), &gw.url(path), KEY).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(got.x_cache(), "MISS");
    upstream.update(|s| s.status = None);
}

#[tokio::test]
async fn a_401_on_one_route_does_not_answer_another() {
    let upstream = FakeUpstream::start().await;
    let (_gateway, gw) = start(&upstream).await;
    refused_once(&upstream, &gw, FLAGS).await;
    assert_eq!(upstream.count(), 1);

    // The upstream accepts the key on /v1/vardata: evalgate asks it.
    let got = get_with_key(&client(), &gw.url(VARDATA), KEY).await;
    assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
    assert_eq!(got.x_cache(), "MISS");
    assert_eq!(upstream.count(), 2);

    // On its own route the 401 is still remembered, for any request of that route.
    let got = get_with_key(&client(), &gw.url("/sdk/v2/flags?v=0&flag_keys=a"), KEY).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(got.x_cache(), "HIT");
    assert_eq!(upstream.count(), 2);
}

#[tokio::test]
async fn a_401_on_v1_vardata_is_remembered_there() {
    let upstream = FakeUpstream::start().await;
    let (_gateway, gw) = start(&upstream).await;
    let bad = "server-unknown-key-0404";
    let first = get_with_key(&client(), &gw.url(VARDATA), bad).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.count(), 1);

    let again = get_with_key(&client(), &gw.url("/v1/vardata?user_id=other"), bad).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED);
    assert_eq!(again.x_cache(), "HIT");
    assert_eq!(again.body, first.body);
    assert_eq!(upstream.count(), 1, "answered from memory");
}

#[tokio::test]
async fn purging_a_deployment_drops_its_401s_on_every_route() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(&upstream).await;
    refused_once(&upstream, &gw, FLAGS).await;
    refused_once(&upstream, &gw, VARDATA).await;
    for path in [FLAGS, VARDATA] {
        let got = get_with_key(&client(), &gw.url(path), KEY).await;
        assert_eq!(
            (got.status, got.x_cache()),
            (StatusCode::UNAUTHORIZED, "HIT")
        );
    }
    assert_eq!(upstream.count(), 2);

    gateway.purge(&PurgeScope::Deployment(KEY.into())).await;
    for (path, count) in [(FLAGS, 3), (VARDATA, 4)] {
        let got = get_with_key(&client(), &gw.url(path), KEY).await;
        assert_eq!(got.status, StatusCode::OK, "{path}: {:?}", got.body);
        assert_eq!(got.x_cache(), "MISS");
        assert_eq!(upstream.count(), count);
    }
}

/// A 401 fetched across a purge is not remembered: the purge may be the operator
/// re-enabling the key, and the upstream would now answer 200.
#[tokio::test]
async fn a_401_that_lands_after_a_purge_is_not_remembered() {
    let upstream = FakeUpstream::start().await;
    let (gateway, gw) = start(&upstream).await;
    upstream.update(|s| {
        s.status = Some(StatusCode::UNAUTHORIZED);
        s.hold = Some("user_id=held");
    });
    let url = gw.url("/v1/vardata?user_id=held");
    let pending = tokio::spawn(async move { get_with_key(&client(), &url, KEY).await });
    upstream.wait_for(1).await;

    // The key is re-enabled and purged while its 401 is on the way.
    gateway.purge(&PurgeScope::Deployment(KEY.into())).await;
    upstream.update(|s| s.status = None);
    upstream.release_held();
    let refused = pending.await.unwrap();
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);

    let got = get_with_key(&client(), &gw.url(VARDATA), KEY).await;
    assert_eq!(got.status, StatusCode::OK, "{:?}", got.body);
    assert_eq!(got.x_cache(), "MISS");
    assert_eq!(upstream.count(), 2);
}

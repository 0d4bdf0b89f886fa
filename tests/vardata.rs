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

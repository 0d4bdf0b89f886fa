//! The fleet of gateways on one Redis, and how a test asks it.

use std::time::Duration;

use bytes::Bytes;
use evalgate::config::SharedCacheConfig;
use evalgate::gateway::PurgeScope;
use evalgate::shared_cache::{Fanout, SharedCache};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::time::Instant;

use crate::support::*;

/// The upstream's own time for every answer.
pub const UPSTREAM_DELAY: Duration = Duration::from_millis(20);
/// `shared_cache.timeout_ms`: the bound on any one Redis call.
pub const REDIS_TIMEOUT_MS: u64 = 100;
/// How long the tier may take to turn off or on, or the fleet to see a purge, before a
/// test fails; generous: the real times are a few breaker periods (≤ 400 ms each).
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

/// One gateway of the fleet.
pub struct Node {
    pub gateway: evalgate::Gateway,
    pub server: TestGateway,
}

impl Node {
    pub fn tier(&self) -> &SharedCache {
        self.gateway.shared_cache().expect("the tier is configured")
    }
}

/// A fleet of `n` gateways on one Redis and one upstream, each with its tier in use.
pub async fn fleet(n: usize, upstream: &FakeUpstream, redis_url: &str) -> Vec<Node> {
    fleet_with(n, upstream, redis_url, |_| {}).await
}

/// [`fleet`] with `tweak` applied to each node's `[shared_cache]` after the test settings.
pub async fn fleet_with(
    n: usize,
    upstream: &FakeUpstream,
    redis_url: &str,
    tweak: impl Fn(&mut SharedCacheConfig),
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        let mut config = config_for(&upstream.url());
        let sc = &mut config.shared_cache;
        sc.url = redis_url.to_string();
        sc.key_secret = "fleet-faults-secret".into();
        sc.timeout_ms = REDIS_TIMEOUT_MS;
        sc.connect_timeout_ms = 200;
        sc.breaker_failures = 3;
        sc.breaker_open_ms = 100;
        sc.breaker_max_open_ms = 400;
        sc.resync_interval_ms = 300;
        tweak(sc);
        let gateway = evalgate::Gateway::new(config.validate().unwrap()).unwrap();
        let server = TestGateway::start_gateway(gateway.clone()).await;
        nodes.push(Node { gateway, server });
    }
    all_until(&nodes, true).await;
    nodes
}

/// Waits until every node's tier is in use (`true`) or off.
pub async fn all_until(nodes: &[Node], up: bool) {
    for (i, node) in nodes.iter().enumerate() {
        tokio::time::timeout(EVENT_TIMEOUT, node.tier().until(up))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "node {i}: tier not {} within {EVENT_TIMEOUT:?}",
                    if up { "on" } else { "off" }
                )
            });
    }
}

pub fn user_url(node: &Node, user: &str) -> String {
    node.server.url(&format!("/v1/vardata?user_id={user}"))
}

#[derive(Debug, Clone)]
pub struct Answer {
    pub version: u64,
    pub tier: String,
}

/// Checks that `got` is the upstream's answer for `user`: a 200 whose body echoes this
/// deployment key and this user; returns the upstream version it carries.
pub fn check(
    status: StatusCode,
    tier: Option<&str>,
    body: &[u8],
    user: &str,
) -> Result<Answer, String> {
    if status != StatusCode::OK {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let payload = &json["flag-echo"]["payload"];
    let query = payload["query"].as_str().unwrap_or("");
    if payload["key"] != KEY || !query.contains(user) {
        return Err(format!("not the upstream's answer for {user}: {json}"));
    }
    Ok(Answer {
        version: payload["version"].as_u64().ok_or("no version")?,
        tier: tier.unwrap_or("").to_string(),
    })
}

/// Sends one GET and checks the answer; a request that does not end within 5 s is a
/// failure (it would otherwise hang the test).
pub async fn ask(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    user: &str,
) -> Result<Answer, String> {
    let request = Request::builder()
        .method(Method::GET)
        .uri(url)
        .header("authorization", format!("Api-Key {KEY}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let exchange = async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        let tier = parts
            .headers
            .get("x-cache-tier")
            .and_then(|v| v.to_str().ok());
        check(parts.status, tier, &body, user)
    };
    match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(outcome) => outcome,
        Err(_) => Err("no answer within 5 s".into()),
    }
}

/// A fresh key asked on node `from` then on node `to` is answered from Redis on `to`:
/// the tier is in use across instances again.
pub async fn assert_l2_across(
    nodes: &[Node],
    upstream: &FakeUpstream,
    from: usize,
    to: usize,
    user: &str,
) {
    let http = client();
    let before = upstream.count();
    let first = ask(&http, &user_url(&nodes[from], user), user)
        .await
        .unwrap();
    assert_eq!(first.tier, "upstream", "{user} on node {from}");
    let second = ask(&http, &user_url(&nodes[to], user), user).await.unwrap();
    assert_eq!(
        second.tier, "l2",
        "{user} on node {to}: the fill from node {from} in Redis"
    );
    assert_eq!(
        upstream.count(),
        before + 1,
        "one upstream request for {user}"
    );
}

/// Bumps the upstream's answers to `version` and purges `KEY` on `node`; returns what
/// became of the purge beyond it.
pub async fn purge_with_new_answers(upstream: &FakeUpstream, node: &Node, version: u64) -> Fanout {
    upstream.update(|s| s.version = version);
    node.gateway
        .purge(&PurgeScope::Deployment(KEY.to_string()))
        .await
        .expect("the tier is configured")
}

/// Asks `user` on every node until each answers `version`, within `EVENT_TIMEOUT`; returns
/// when the whole fleet serves it.
pub async fn until_fleet_serves(nodes: &[Node], user: &str, version: u64) -> Instant {
    let http = client();
    let deadline = Instant::now() + EVENT_TIMEOUT;
    for (i, node) in nodes.iter().enumerate() {
        loop {
            let got = ask(&http, &user_url(node, user), user).await.unwrap();
            if got.version >= version {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i} still serves version {} of {user} {EVENT_TIMEOUT:?} after the purge",
                got.version
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Instant::now()
}

pub fn ops(nodes: &[Node], op: &str, result: &str) -> u64 {
    nodes
        .iter()
        .map(|n| n.tier().metrics().count(op, result))
        .sum()
}

pub async fn upstream() -> FakeUpstream {
    let upstream = FakeUpstream::start().await;
    upstream.set_delay(UPSTREAM_DELAY);
    upstream
}

//! A fleet of gateways in one test process: each instance its own `Gateway` and listener on
//! 127.0.0.1:0, all sharing one real Redis (the shared cache tier, issue 13) in front of one
//! counting upstream. An instance is returned once its tier is on, so counts never race the
//! first connection to Redis.

use std::time::{Duration, Instant};

use evalgate::shared_cache::SharedCache;
use evalgate::{Config, Gateway};

use super::{TestGateway, config_for};

/// How long an instance may take to connect to Redis and turn its tier on: a bound proving
/// "it comes up", never a speed requirement.
pub const TIER_UP: Duration = Duration::from_secs(5);

/// The step of the bounded polls below.
const POLL_STEP: Duration = Duration::from_millis(10);

/// A config for one instance in front of `upstream_url` with the tier on `redis_url`, and
/// short tier settings (waiters look every 10 ms, resync every 300 ms, a broken Redis is
/// probed again after 100 ms).
///
/// `timeout_ms` is 1000, not the 50 of production: a Redis call that times out is, by
/// design, an upstream request (the instance goes on as a single box), and these tests
/// count upstream requests exactly on a shared two-core VM where a process can stall for
/// 100 ms. No test here injects a Redis fault, so the bound is never reached when the code
/// is right; the fault tests prove the short bounds.
pub fn fleet_config(upstream_url: &str, redis_url: &str) -> Config {
    let mut config = config_for(upstream_url);
    let tier = &mut config.shared_cache;
    tier.url = redis_url.to_string();
    tier.timeout_ms = 1000;
    tier.wait_poll_ms = 10;
    tier.resync_interval_ms = 300;
    tier.breaker_open_ms = 100;
    config
}

/// One instance: its gateway (for its tier, metrics and purges) and its listener.
pub struct Instance {
    pub gateway: Gateway,
    pub server: TestGateway,
}

impl Instance {
    /// Starts an instance from `config`; with the tier configured, returns once it is on.
    pub async fn start(config: Config) -> Instance {
        let gateway = Gateway::new(config.validate().expect("fleet config is valid"))
            .expect("gateway builds");
        let server = TestGateway::start_gateway(gateway.clone()).await;
        if let Some(tier) = gateway.shared_cache() {
            tokio::time::timeout(TIER_UP, tier.until(true))
                .await
                .expect("the shared tier turns on within TIER_UP");
        }
        Instance { gateway, server }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        self.server.url(path_and_query)
    }

    /// The instance's shared tier; panics when it has none.
    pub fn tier(&self) -> &SharedCache {
        self.gateway.shared_cache().expect("the shared tier is on")
    }

    /// `evalgate_shared_cache_ops_total{op, result}` of this instance.
    pub fn ops(&self, op: &str, result: &str) -> u64 {
        self.tier().metrics().count(op, result)
    }
}

/// Instances started from one config.
pub struct Fleet {
    pub instances: Vec<Instance>,
}

impl Fleet {
    /// `n` instances from `config`, each returned once its tier is on.
    pub async fn start(n: usize, config: &Config) -> Fleet {
        let mut instances = Vec::with_capacity(n);
        for _ in 0..n {
            instances.push(Instance::start(config.clone()).await);
        }
        Fleet { instances }
    }

    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// A URL on instance `i`.
    pub fn url(&self, i: usize, path_and_query: &str) -> String {
        self.instances[i].url(path_and_query)
    }

    /// `evalgate_shared_cache_ops_total{op, result}` summed over the fleet.
    pub fn ops(&self, op: &str, result: &str) -> u64 {
        self.instances.iter().map(|i| i.ops(op, result)).sum()
    }

    /// Every tier operation the fleet counted that did not go as planned (errors, timeouts,
    /// skips), for failure messages.
    pub fn troubles(&self) -> Vec<(String, u64)> {
        let mut troubles = Vec::new();
        for op in ["read", "write", "release", "purge", "resync"] {
            for result in ["error", "timeout", "skipped"] {
                let n = self.ops(op, result);
                if n > 0 {
                    troubles.push((format!("{op}/{result}"), n));
                }
            }
        }
        troubles
    }

    /// Waits until the fleet counted at least `n` tier operations `op`/`result` (e.g. the
    /// writes that follow answers), at most [`TIER_UP`]; panics past it.
    pub async fn await_ops(&self, op: &str, result: &str, n: u64) {
        let deadline = Instant::now() + TIER_UP;
        while self.ops(op, result) < n {
            assert!(
                Instant::now() < deadline,
                "{op}/{result}: {} of {n} within {TIER_UP:?} (troubles: {:?})",
                self.ops(op, result),
                self.troubles()
            );
            tokio::time::sleep(POLL_STEP).await;
        }
    }
}

impl std::ops::Index<usize> for Fleet {
    type Output = Instance;

    fn index(&self, i: usize) -> &Instance {
        &self.instances[i]
    }
}

/// The `X-Cache` and `X-Cache-Tier` of an answer, e.g. `("HIT", "l2")`; an answer from
/// the instance's own memory carries no tier header: `"l1"`.
pub fn cache_and_tier(got: &super::Got) -> (String, String) {
    (
        got.x_cache().to_string(),
        got.header("x-cache-tier").unwrap_or("l1").to_string(),
    )
}

//! Gateways sharing one shared cache tier, each from its own config (the Cluster and TLS
//! tests): start them, await their tiers, sum their metrics, read what the upstream echoed.

use std::time::{Duration, Instant};

use super::{Got, TestGateway};

/// How long a gateway may take to connect, resync and turn its tier on.
pub const TIER_UP: Duration = Duration::from_secs(10);
/// The step of the few loops that must observe something "within a bound".
pub const POLL: Duration = Duration::from_millis(10);

/// Gateways sharing one tier, each with its admin listener.
pub struct Fleet {
    pub gateways: Vec<evalgate::Gateway>,
    pub servers: Vec<TestGateway>,
}

impl Fleet {
    /// `configs.len()` gateways, returned once every one's tier is in use.
    pub async fn start(configs: Vec<evalgate::Config>) -> Fleet {
        let mut fleet = Fleet {
            gateways: Vec::new(),
            servers: Vec::new(),
        };
        for config in configs {
            let g = evalgate::Gateway::new(config.validate().unwrap()).unwrap();
            fleet
                .servers
                .push(TestGateway::start_with_admin(g.clone()).await);
            fleet.gateways.push(g);
        }
        for g in &fleet.gateways {
            tokio::time::timeout(TIER_UP, g.shared_cache().unwrap().until(true))
                .await
                .expect("the tier comes up");
        }
        fleet
    }

    /// The sum of one tier metric over the fleet.
    pub fn count(&self, op: &str, result: &str) -> u64 {
        self.gateways
            .iter()
            .map(|g| g.shared_cache().unwrap().metrics().count(op, result))
            .sum()
    }

    /// Waits (bounded) until `op`/`result` reaches `n` over the fleet: writes run in
    /// tracked tasks after the client has its answer.
    pub async fn await_count(&self, op: &str, result: &str, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.count(op, result) < n {
            assert!(
                Instant::now() < deadline,
                "{op}/{result}: {} of {n}",
                self.count(op, result)
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

pub fn vardata(user: usize) -> String {
    format!("/v1/vardata?user_id=u{user}&flag_key=a")
}

/// The `user_id` of the request the upstream answered, and the upstream's version, as the
/// answer echoes them.
pub fn echoed(got: &Got) -> (String, u64) {
    let json = got.json();
    let payload = &json["flag-echo"]["payload"];
    let query = payload["query"].as_str().unwrap();
    let user = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("user_id="))
        .unwrap_or_else(|| panic!("no user_id in {query}"));
    (user.to_string(), payload["version"].as_u64().unwrap())
}

//! A Redis Cluster of real `redis-server` processes, masters only, on free loopback ports.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{TempDir, free_port, run_bounded};
use super::{POLL_STEP, RedisServer, StoredKey};

/// How long the cluster may take to reach `cluster_state:ok` after `--cluster create`.
const FORM_TIMEOUT: Duration = Duration::from_secs(15);

/// `masters` cluster nodes sharing the 16384 slots; every process is killed by PID on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    /// Starts `masters` nodes (at least 3, as `redis-cli --cluster create` requires), joins
    /// them with `redis-cli --cluster create … --cluster-replicas 0`, and waits until every
    /// node reports `cluster_state:ok`.
    pub fn start(masters: usize) -> Self {
        assert!(
            masters >= 3,
            "a Redis Cluster needs at least 3 masters, got {masters}"
        );
        let nodes = (0..masters)
            .map(|_| {
                RedisServer::start_on_free_port(TempDir::new("redis-cluster"), None, || {
                    let bus_port = free_port().to_string();
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                    ]
                    .into_iter()
                    .chain([
                        "--cluster-node-timeout",
                        "2000",
                        "--cluster-port",
                        &bus_port,
                    ])
                    .map(str::to_string)
                    .collect()
                })
            })
            .collect();
        let cluster = Self { nodes };
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        create.args(
            cluster
                .nodes
                .iter()
                .map(|n| format!("127.0.0.1:{}", n.port())),
        );
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        if let Err(e) = run_bounded(&mut create, Duration::from_secs(60), "redis-tools") {
            panic!("redis-cli --cluster create: {e}\n{}", cluster.logs());
        }
        cluster.wait_until_ok();
        cluster
    }

    fn wait_until_ok(&self) {
        let started = Instant::now();
        for node in &self.nodes {
            loop {
                let info = node.try_cmd(&["CLUSTER", "INFO"]).unwrap_or_else(|e| e);
                if info.lines().any(|line| line.trim() == "cluster_state:ok") {
                    break;
                }
                if started.elapsed() > FORM_TIMEOUT {
                    panic!(
                        "node {} not cluster_state:ok within {FORM_TIMEOUT:?}:\n{info}\n{}",
                        node.port(),
                        self.logs()
                    );
                }
                std::thread::sleep(POLL_STEP);
            }
        }
    }

    /// `redis://127.0.0.1:P` of every node.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The nodes, to signal or query one (`cmd`, `stop`, `kill`, `keys`).
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }

    /// A cluster client seeded with every node.
    pub fn client(&self) -> ::redis::cluster::ClusterClient {
        ::redis::cluster::ClusterClient::new(self.node_urls()).expect("cluster client")
    }

    /// Every key of every node with its value and PTTL, one map per node (in `nodes()` order).
    pub fn keys_by_node(&self) -> Vec<BTreeMap<String, StoredKey>> {
        self.nodes.iter().map(RedisServer::keys).collect()
    }

    /// Every key of the whole cluster with its value and PTTL.
    pub fn keys(&self) -> BTreeMap<String, StoredKey> {
        self.keys_by_node().into_iter().flatten().collect()
    }

    fn logs(&self) -> String {
        let logs = self
            .nodes
            .iter()
            .map(|n| format!("=== node {} ===\n{}", n.port(), n.log()));
        logs.collect::<Vec<_>>().join("\n")
    }
}

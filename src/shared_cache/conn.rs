//! The connection to Redis (one server or a Cluster) and the one way calls are made:
//! within `shared_cache.max_inflight`, bounded by `shared_cache.timeout_ms`, counted, and
//! reported to the circuit breaker. Nothing is queued while Redis is away: a call that
//! cannot be made at once is skipped.

use std::sync::RwLock;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Client, Cmd, Pipeline, RedisFuture, TlsCertificates, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::breaker::Breaker;
use crate::config::SharedCacheConfig;
use crate::metrics::SharedCacheMetrics;

/// A connection to a single server (reconnecting by itself) or to a Cluster.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// Why a call did not return a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Not made: the breaker is open, there is no connection yet, or too many calls are
    /// in flight.
    Skipped,
    Timeout,
    Failed(String),
}

impl CallError {
    /// The metric result for this error.
    pub fn result(&self) -> &'static str {
        match self {
            CallError::Skipped => "skipped",
            CallError::Timeout => "timeout",
            CallError::Failed(_) => "error",
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Skipped => f.write_str("skipped"),
            CallError::Timeout => f.write_str("timed out"),
            CallError::Failed(e) => f.write_str(e),
        }
    }
}

/// How Redis is reached.
pub enum Target {
    Single(Box<Client>),
    Cluster(Box<ClusterClient>),
}

impl Target {
    /// The client for the configured server or cluster (no connection yet).
    pub fn new(config: &SharedCacheConfig) -> Result<Target, String> {
        let certs = || -> Result<Option<TlsCertificates>, String> {
            if config.ca_file.is_empty() {
                return Ok(None);
            }
            let pem = std::fs::read(&config.ca_file)
                .map_err(|e| format!("cannot read shared_cache.ca_file: {e}"))?;
            Ok(Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            }))
        };
        if config.cluster_nodes.is_empty() {
            let client = match certs()? {
                Some(certs) => Client::build_with_tls(config.url.as_str(), certs),
                None => Client::open(config.url.as_str()),
            };
            client
                .map(|c| Target::Single(Box::new(c)))
                .map_err(|e| e.to_string())
        } else {
            let mut builder = ClusterClient::builder(config.cluster_nodes.clone())
                .connection_timeout(config.connect_timeout())
                .response_timeout(config.timeout())
                .retries(0);
            if let Some(certs) = certs()? {
                builder = builder.certs(certs);
            }
            builder
                .build()
                .map(|c| Target::Cluster(Box::new(c)))
                .map_err(|e| e.to_string())
        }
    }

    /// Opens a connection within `connect_timeout`.
    pub async fn connect(&self, config: &SharedCacheConfig) -> Result<Conn, String> {
        let attempt = async {
            match self {
                Target::Single(client) => {
                    let manager_config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(config.connect_timeout()))
                        .set_response_timeout(Some(config.timeout()))
                        // One quick retry; the breaker, not the client, rides out outages.
                        .set_number_of_retries(1)
                        .set_max_delay(Duration::from_millis(100))
                        .set_concurrency_limit(config.max_inflight);
                    ConnectionManager::new_with_config((**client).clone(), manager_config)
                        .await
                        .map(Conn::Single)
                }
                Target::Cluster(client) => client.get_async_connection().await.map(Conn::Cluster),
            }
        };
        // Connection plus one retry, each bounded by connect_timeout.
        match tokio::time::timeout(config.connect_timeout() * 3, attempt).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no connection within {} ms",
                config.connect_timeout_ms
            )),
        }
    }

    /// A plain client for subscribing: the server, or in a Cluster the first node that
    /// answers (a Cluster forwards every PUBLISH to every node).
    pub fn pubsub_clients(&self, config: &SharedCacheConfig) -> Vec<Client> {
        let open = |url: &str| -> Option<Client> {
            if config.ca_file.is_empty() {
                return Client::open(url).ok();
            }
            let pem = std::fs::read(&config.ca_file).ok()?;
            Client::build_with_tls(
                url,
                TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            )
            .ok()
        };
        match self {
            Target::Single(client) => vec![(**client).clone()],
            Target::Cluster(_) => config
                .cluster_nodes
                .iter()
                .filter_map(|u| open(u))
                .collect(),
        }
    }
}

/// The current connection and the limits every call obeys.
pub struct Calls {
    conn: RwLock<Option<Conn>>,
    inflight: Semaphore,
    timeout: Duration,
    pub breaker: Breaker,
    pub metrics: SharedCacheMetrics,
}

impl Calls {
    pub fn new(config: &SharedCacheConfig, metrics: SharedCacheMetrics) -> Calls {
        Calls {
            conn: RwLock::new(None),
            inflight: Semaphore::new(config.max_inflight),
            timeout: config.timeout(),
            breaker: Breaker::new(config.breaker_failures),
            metrics,
        }
    }

    pub fn set_conn(&self, conn: Conn) {
        *self.conn.write().unwrap_or_else(|e| e.into_inner()) = Some(conn);
    }

    fn conn(&self) -> Option<Conn> {
        self.conn.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `call` on the connection unless the breaker is open; see [`Calls::call_anyway`].
    pub async fn call<T, F, Fut>(&self, op: &'static str, call: F) -> Result<T, CallError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.closed() {
            return Err(CallError::Skipped);
        }
        self.call_anyway(op, call).await
    }

    /// Runs `call` within the in-flight bound and the timeout, whatever the breaker says
    /// (the maintenance task's probes); failures count towards opening it.
    pub async fn call_anyway<T, F, Fut>(&self, op: &'static str, call: F) -> Result<T, CallError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let Some(conn) = self.conn() else {
            return Err(CallError::Skipped);
        };
        let Ok(_permit) = self.inflight.try_acquire() else {
            return Err(CallError::Skipped);
        };
        let started = Instant::now();
        let result = tokio::time::timeout(self.timeout, call(conn)).await;
        self.metrics.latency(op, started.elapsed());
        match result {
            Ok(Ok(value)) => {
                self.breaker.success();
                Ok(value)
            }
            // The client's own response timeout (the same bound) may fire first: still a
            // timeout, not an error reply.
            Ok(Err(e)) if e.is_timeout() => Err(self.timed_out()),
            Ok(Err(e)) => {
                // A full Redis (OOM) answers quickly: the server is there, the write just
                // has no room, so it does not count towards turning the tier off.
                if e.code() != Some("OOM") && self.breaker.failure() {
                    tracing::warn!(error = %e, "shared cache: Redis calls failing; tier off until a probe succeeds");
                }
                Err(CallError::Failed(e.to_string()))
            }
            Err(_) => Err(self.timed_out()),
        }
    }

    /// A call that got no answer within `timeout_ms`: counts towards opening the breaker.
    fn timed_out(&self) -> CallError {
        if self.breaker.failure() {
            tracing::warn!(
                timeout_ms = self.timeout.as_millis() as u64,
                "shared cache: Redis calls timing out; tier off until a probe succeeds"
            );
        }
        CallError::Timeout
    }
}

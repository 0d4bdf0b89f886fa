//! `[shared_cache]`: the second cache tier on Redis/Valkey, shared by a fleet.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `[shared_cache]`: off while both `url` and `cluster_nodes` are empty.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SharedCacheConfig {
    /// `redis://[user:password@]host:port[/db]`, or `rediss://` for TLS. Empty: no tier
    /// (unless `cluster_nodes` is set).
    pub url: String,
    /// Redis Cluster seed nodes (`redis://h:p` or `rediss://h:p`), instead of `url`.
    pub cluster_nodes: Vec<String>,
    /// Prefix of every key and channel, and folded into every key's hash: fleets with
    /// different namespaces never share an entry.
    pub namespace: String,
    /// Secret of the keyed hashes that name keys (HMAC-SHA256). Empty: an unkeyed hash and
    /// a warning at start-up. Every instance of a fleet needs the same one.
    pub key_secret: String,
    /// PEM file of the CA that signed the Redis server's certificate (`rediss://`);
    /// empty: the system's roots.
    pub ca_file: String,
    /// The bound on any one Redis call (reads, lock, writes, purge).
    pub timeout_ms: u64,
    /// The bound on opening a connection to Redis.
    pub connect_timeout_ms: u64,
    /// How long a fill lock lives; 0: `upstream.timeout_ms` (a live holder's fetch ends
    /// by then, a dead holder's lock frees a waiter then).
    pub lock_ttl_ms: u64,
    /// How often an instance waiting for another's fill looks for the value.
    pub wait_poll_ms: u64,
    /// How often generations (purges) are re-read from Redis, the worst-case delay of a
    /// purge whose announcement was missed.
    pub resync_interval_ms: u64,
    /// Consecutive failed or timed-out calls that turn the tier off (circuit open).
    pub breaker_failures: u32,
    /// How long the tier stays off before one probe; doubles per failed probe.
    pub breaker_open_ms: u64,
    /// The longest the tier stays off between probes.
    pub breaker_max_open_ms: u64,
    /// Redis calls in flight at once per instance; past it a call is skipped (the request
    /// goes on as on a single box).
    pub max_inflight: usize,
    /// Writes to Redis queued or running at once; past it a write is skipped (counted).
    pub max_pending_writes: usize,
    /// Answers larger than this are kept in this instance only.
    pub max_value_bytes: usize,
}

impl Default for SharedCacheConfig {
    fn default() -> Self {
        SharedCacheConfig {
            url: String::new(),
            cluster_nodes: Vec::new(),
            namespace: "evalgate".into(),
            key_secret: String::new(),
            ca_file: String::new(),
            timeout_ms: 50,
            connect_timeout_ms: 1000,
            lock_ttl_ms: 0,
            wait_poll_ms: 20,
            resync_interval_ms: 2000,
            breaker_failures: 5,
            breaker_open_ms: 1000,
            breaker_max_open_ms: 30_000,
            max_inflight: 256,
            max_pending_writes: 1024,
            max_value_bytes: 1024 * 1024,
        }
    }
}

impl SharedCacheConfig {
    /// Whether the tier is configured.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty() || !self.cluster_nodes.is_empty()
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn wait_poll(&self) -> Duration {
        Duration::from_millis(self.wait_poll_ms)
    }

    pub fn resync_interval(&self) -> Duration {
        Duration::from_millis(self.resync_interval_ms)
    }

    /// Where Redis is, for logs: the URL or first node with any password masked.
    pub fn display_target(&self) -> String {
        let target = match self.cluster_nodes.first() {
            Some(first) => format!("cluster {first} (+{})", self.cluster_nodes.len() - 1),
            None => self.url.clone(),
        };
        without_password(&target)
    }
}

/// `scheme://user:password@host` → `scheme://user:***@host`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

impl SharedCacheConfig {
    /// Checks the section (nothing when the tier is off but the ranges).
    pub(super) fn validate(&self) -> Result<(), super::ConfigError> {
        use super::validate::{invalid, range};
        if !self.url.is_empty() && !self.cluster_nodes.is_empty() {
            return Err(invalid(
                "shared_cache.url",
                "set `url` (one server) or `cluster_nodes` (Redis Cluster), not both".into(),
            ));
        }
        if !self.url.is_empty() {
            redis_url("shared_cache.url", &self.url)?;
        }
        for node in &self.cluster_nodes {
            redis_url("shared_cache.cluster_nodes", node)?;
        }
        let schemes = self
            .cluster_nodes
            .iter()
            .map(|n| n.starts_with("rediss://"))
            .collect::<std::collections::HashSet<_>>();
        if schemes.len() > 1 {
            return Err(invalid(
                "shared_cache.cluster_nodes",
                "mixes redis:// and rediss:// nodes".into(),
            ));
        }
        let ns = &self.namespace;
        if ns.is_empty()
            || ns.len() > 64
            || !ns
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(invalid(
                "shared_cache.namespace",
                format!("`{ns}` must be 1-64 characters of A-Z a-z 0-9 - _ ."),
            ));
        }
        if !self.ca_file.is_empty() && !std::path::Path::new(&self.ca_file).is_file() {
            return Err(invalid(
                "shared_cache.ca_file",
                format!("`{}` is not a readable file", self.ca_file),
            ));
        }
        const HOUR_MS: u64 = 3_600_000;
        range("shared_cache.timeout_ms", self.timeout_ms, 1, 60_000)?;
        range(
            "shared_cache.connect_timeout_ms",
            self.connect_timeout_ms,
            1,
            60_000,
        )?;
        range("shared_cache.lock_ttl_ms", self.lock_ttl_ms, 0, HOUR_MS)?;
        range("shared_cache.wait_poll_ms", self.wait_poll_ms, 1, 60_000)?;
        range(
            "shared_cache.resync_interval_ms",
            self.resync_interval_ms,
            10,
            HOUR_MS,
        )?;
        range(
            "shared_cache.breaker_failures",
            u64::from(self.breaker_failures),
            1,
            1_000_000,
        )?;
        range(
            "shared_cache.breaker_open_ms",
            self.breaker_open_ms,
            1,
            HOUR_MS,
        )?;
        range(
            "shared_cache.breaker_max_open_ms",
            self.breaker_max_open_ms,
            self.breaker_open_ms,
            HOUR_MS,
        )?;
        range(
            "shared_cache.max_inflight",
            self.max_inflight as u64,
            1,
            1_000_000,
        )?;
        range(
            "shared_cache.max_pending_writes",
            self.max_pending_writes as u64,
            0,
            1_000_000,
        )?;
        range(
            "shared_cache.max_value_bytes",
            self.max_value_bytes as u64,
            1024,
            512 * 1024 * 1024,
        )?;
        Ok(())
    }
}

/// A Redis URL redis-rs accepts, with a host and the `redis` or `rediss` scheme.
fn redis_url(key: &'static str, url: &str) -> Result<(), super::ConfigError> {
    use redis::IntoConnectionInfo;
    let problem = |what: String| super::validate::invalid(key, what);
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err(problem(format!(
            "`{}` is not a redis:// or rediss:// URL",
            without_password(url)
        )));
    }
    url.into_connection_info()
        .map(|_| ())
        .map_err(|e| problem(format!("`{}`: {e}", without_password(url))))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    /// The message validating `text` fails with.
    fn problem(text: &str) -> String {
        Config::from_toml_str(text)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn off_by_default_and_on_with_a_url_or_nodes() {
        let cfg = Config::default().validate().unwrap();
        assert!(!cfg.shared_cache.enabled());
        for text in [
            "[shared_cache]\nurl = \"redis://127.0.0.1:6379\"\n",
            "[shared_cache]\nurl = \"rediss://user:pw@redis.internal:6380/2\"\n",
            "[shared_cache]\ncluster_nodes = [\"redis://10.0.0.1:7000\", \"redis://10.0.0.2:7000\"]\n",
        ] {
            let cfg = Config::from_toml_str(text).unwrap().validate().unwrap();
            assert!(cfg.shared_cache.enabled(), "{text}");
        }
    }

    #[test]
    fn bad_urls_name_the_key() {
        for (text, key) in [
            (
                "[shared_cache]\nurl = \"http://127.0.0.1:6379\"\n",
                "shared_cache.url",
            ),
            ("[shared_cache]\nurl = \"redis://\"\n", "shared_cache.url"),
            (
                "[shared_cache]\ncluster_nodes = [\"127.0.0.1:7000\"]\n",
                "shared_cache.cluster_nodes",
            ),
            (
                "[shared_cache]\ncluster_nodes = [\"redis://a:1\", \"rediss://b:1\"]\n",
                "shared_cache.cluster_nodes",
            ),
            (
                "[shared_cache]\nurl = \"redis://a:1\"\ncluster_nodes = [\"redis://b:1\"]\n",
                "shared_cache.url",
            ),
        ] {
            let msg = problem(text);
            assert!(msg.starts_with(&format!("`{key}`")), "{text}: {msg}");
        }
    }

    #[test]
    fn a_password_never_reaches_a_message_or_check_output() {
        let msg = problem("[shared_cache]\nurl = \"http://user:hunter2@h:1\"\n");
        assert!(!msg.contains("hunter2"), "{msg}");
        let cfg = Config::from_toml_str(
            "[shared_cache]\nurl = \"redis://user:hunter2@h:1\"\nkey_secret = \"s3cr3t\"\n",
        )
        .unwrap()
        .validate()
        .unwrap();
        let shown = cfg.to_toml();
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(shown.contains("redis://user:***@h:1"), "{shown}");
        assert_eq!(
            super::without_password("redis://:pw@h:1"),
            "redis://:***@h:1"
        );
        assert_eq!(super::without_password("redis://h:1"), "redis://h:1");
    }

    #[test]
    fn namespace_and_limits_are_checked() {
        for (text, key) in [
            (
                "[shared_cache]\nnamespace = \"\"\n",
                "shared_cache.namespace",
            ),
            (
                "[shared_cache]\nnamespace = \"a b\"\n",
                "shared_cache.namespace",
            ),
            (
                "[shared_cache]\ntimeout_ms = 0\n",
                "shared_cache.timeout_ms",
            ),
            (
                "[shared_cache]\nmax_inflight = 0\n",
                "shared_cache.max_inflight",
            ),
            (
                "[shared_cache]\nbreaker_open_ms = 500\nbreaker_max_open_ms = 100\n",
                "shared_cache.breaker_max_open_ms",
            ),
            (
                "[shared_cache]\nresync_interval_ms = 1\n",
                "shared_cache.resync_interval_ms",
            ),
            (
                "[shared_cache]\nca_file = \"/no/such/ca.pem\"\n",
                "shared_cache.ca_file",
            ),
        ] {
            let msg = problem(text);
            assert!(msg.starts_with(&format!("`{key}`")), "{text}: {msg}");
        }
    }
}

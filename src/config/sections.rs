//! The sections of `config.toml`, each with its defaults.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::guard::{BudgetMode, Tracking};

/// `[log]`: what is logged (the format is `--log-format`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter (`info`, `warn,evalgate::access=info`, …); `RUST_LOG`, when set,
    /// wins. Applied live on SIGHUP.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

/// `[invalidation]`: purge a deployment's answers when its flags change upstream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct InvalidationConfig {
    /// Base URL serving `/sdk/v2/flags` (e.g. `https://flag.lab.amplitude.com`); empty
    /// disables polling.
    pub flags_url: String,
    /// How often each served deployment's flags are polled.
    pub poll_interval_s: u64,
}

impl Default for InvalidationConfig {
    fn default() -> Self {
        InvalidationConfig {
            flags_url: String::new(),
            poll_interval_s: 30,
        }
    }
}

/// `[admin]`: the operator listener (metrics, health, stats, purge, the status page).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Address of the admin listener; never the public port. Empty disables it.
    pub listen: String,
    /// When set, every admin endpoint but `/healthz` and `/readyz` requires
    /// `Authorization: Bearer <token>`.
    pub token: String,
    /// `/readyz` fails while upstream exchanges were attempted within this many seconds and
    /// none of them got an HTTP answer.
    pub ready_upstream_window_s: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9090".into(),
            token: String::new(),
            ready_upstream_window_s: 30,
        }
    }
}

/// `[access_log]`: one structured line per request (target `evalgate::access`, level info).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AccessLogConfig {
    pub enabled: bool,
    /// Fraction of requests logged, 0.0-1.0.
    pub sample_rate: f64,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            enabled: false,
            sample_rate: 1.0,
        }
    }
}

/// `[server]`: the public listener and the limits on what clients may send.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the public listener.
    pub listen: String,
    /// Tokio worker threads; 0 means one per CPU the process may run on.
    pub worker_threads: usize,
    /// Connections served at once; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Longest request target (path + query) in bytes; longer gets 414.
    pub max_query_bytes: usize,
    /// Longest decoded `context` parameter in bytes; longer gets 414.
    pub max_context_bytes: usize,
    /// Total bytes of request header names and values; more gets 431.
    pub max_header_bytes: usize,
    /// Largest request body in bytes; larger gets 413.
    pub max_body_bytes: usize,
    /// A client must send a complete request head within this time (slowloris guard).
    pub header_read_timeout_ms: u64,
    /// A client must send a request's whole body within this time, counted from when its
    /// head was complete (slow-body guard); else 408.
    pub body_read_timeout_ms: u64,
    /// A keep-alive connection with no request in flight is closed after this time.
    pub keepalive_idle_timeout_ms: u64,
    /// On SIGINT/SIGTERM, in-flight requests get this long to finish.
    pub shutdown_timeout_ms: u64,
    /// Forward request header fields whose name contains `_` (nginx's setting of the same
    /// name). Off: they are dropped from passthrough requests, since an upstream that folds
    /// `_` into `-` (CGI, WSGI) would read `Content_Length` as `Content-Length`.
    pub underscores_in_headers: bool,
}

/// `[upstream]`: the evaluation server that misses are forwarded to.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Base URL (`http://` or `https://`, optional path prefix, no query).
    pub url: String,
    /// Whole upstream exchange (connect, send, read the body) must finish in this time; else 504.
    pub timeout_ms: u64,
    /// TCP + TLS connect must finish in this time; else 502.
    pub connect_timeout_ms: u64,
    /// Upstream requests in flight at once; misses past it get 503 with `Retry-After`.
    pub max_inflight: usize,
    /// Cache fills running with nobody waiting (every client hung up, or a background
    /// refresh); an abandoned fill past it is cancelled, a refresh past it not started.
    pub max_abandoned_fills: usize,
    /// Idle pooled connections are closed after this; keep it below the upstream's own.
    pub pool_idle_timeout_ms: u64,
    /// Idle pooled connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// Largest upstream response body accepted; larger is a 502.
    pub max_response_bytes: usize,
    /// Cache fills sent together on one connection (HTTP/1.1 pipelining); 1 = one request
    /// per connection.
    pub pipeline_depth: usize,
    /// Query parameter name(s) the canonical flag-key list is forwarded under.
    pub flag_keys_param: FlagKeysParam,
    /// `passthrough` forwards the client's tracking headers; `never` sends `no-track` for
    /// assignments and exposures on every upstream request ([`Tracking`]).
    pub tracking: Tracking,
    /// Upstream requests per second allowed per deployment key (a token bucket refilled
    /// at this rate); 0 turns the budget off.
    pub budget_rps: f64,
    /// Upstream requests a deployment key may send at once before the rate applies (the
    /// bucket's size).
    pub budget_burst: u32,
    /// Over budget: `enforce` (stale entry, else 429) or `log` (sent, counted).
    pub budget_mode: BudgetMode,
    /// Deployment keys whose buckets are kept; past it the least recently used goes.
    pub budget_max_deployments: usize,
}

/// How the canonical flag-key list is spelled in the forwarded query.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FlagKeysParam {
    /// `flag_key=…&flag_keys=…`: works with Amplitude (`flag_keys`) and the evaluation-proxy (`flag_key`).
    Both,
    /// Only `flag_key` (the original API document, Amplitude's evaluation-proxy).
    FlagKey,
    /// Only `flag_keys` (Amplitude's current documentation).
    FlagKeys,
}

/// `[cache]`: the in-memory response cache.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Upper bound on the memory of all entries, in bytes (each weighs its allocations).
    pub max_bytes: u64,
    /// The share of `max_bytes` for flag configurations (`/sdk/v2/flags`, `/v1/flags`),
    /// in percent: a segment of their own, so that they and answers never evict each other.
    pub flags_percent: u64,
    /// How long a 200 response stays fresh, in seconds.
    pub ttl_s: u64,
    /// How long flag configurations (`/sdk/v2/flags`, `/v1/flags`) stay fresh, in seconds.
    pub flags_ttl_s: u64,
    /// Upper bound on a lifetime taken from the upstream's `Cache-Control`.
    pub max_ttl_s: u64,
    /// Ignore the upstream's `Cache-Control` and always use `ttl_s` / `flags_ttl_s`.
    pub ignore_upstream_cache_control: bool,
    /// After an entry goes stale, answer from it at once for this long while one background
    /// request refreshes it (`X-Cache: STALE`).
    pub stale_while_revalidate_s: u64,
    /// When the upstream fails (unreachable, timeout, 5xx, 429), answer from an entry up to
    /// this long past its freshness (`X-Cache: STALE`).
    pub stale_if_error_s: u64,
    /// A 401 for a deployment key is answered from memory for this long; 0 disables.
    pub negative_ttl_s: u64,
    /// Seconds between two sweeps of the cache, each removing the entries past their
    /// lifetime or purged (reads never serve them; the sweep gives their memory back).
    pub sweep_interval_s: u64,
    /// Which entry goes when the cache is full.
    pub eviction: Eviction,
    /// Spellings of `/v1/vardata` requests whose cache key is remembered, so the same
    /// spelling again skips normalization; 0 turns the memo off.
    pub spelling_memo_entries: usize,
    /// Longest spelling (query + keyed headers) the memo remembers, in bytes; the memo
    /// holds at most `spelling_memo_entries` × this.
    pub spelling_memo_max_bytes: usize,
    /// `Cache-Control` sent to clients on every answer of the cacheable routes (the
    /// upstream's is not relayed there); empty sends none.
    pub client_cache_control: String,
}

/// The cache's eviction policy.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Eviction {
    /// Least recently used goes; a fresh answer is always stored.
    Lru,
    /// moka's TinyLFU: when full, a new entry is only admitted if it is likely to be asked
    /// for more often than the one it would evict. Resists scans, but an answer just
    /// fetched may not be stored.
    TinyLfu,
}

/// `[embedded]`: the in-process evaluation engine used when `upstream.url = "embedded"`
/// (its defaults, forms and checks: [`super::embedded`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(from = "super::embedded::RawEmbedded")]
pub struct EmbeddedConfig {
    /// Flag configurations (a JSON array, as `/sdk/v2/flags` serves them). A relative path
    /// is resolved against the config file's directory.
    pub flags_file: String,
    /// Deployment keys that may read these flags; any other key gets 401.
    pub deployment_keys: Vec<String>,
    /// How often the flags files are checked for changes.
    pub reload_interval_ms: u64,
    /// `[[embedded.deployments]]`: a key and its own flags file per entry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deployments: Vec<super::embedded::EmbeddedDeployment>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            worker_threads: 0,
            max_connections: 10_000,
            max_query_bytes: 16 * 1024,
            max_context_bytes: 8 * 1024,
            max_header_bytes: 32 * 1024,
            max_body_bytes: 64 * 1024,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            keepalive_idle_timeout_ms: 60_000,
            shutdown_timeout_ms: 10_000,
            underscores_in_headers: false,
        }
    }
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            url: "https://api.lab.amplitude.com".into(),
            timeout_ms: 10_000,
            connect_timeout_ms: 2_000,
            max_inflight: 512,
            max_abandoned_fills: crate::coalesce::DEFAULT_MAX_ABANDONED,
            pool_idle_timeout_ms: 30_000,
            pool_max_idle_per_host: 256,
            max_response_bytes: 4 * 1024 * 1024,
            pipeline_depth: 1,
            flag_keys_param: FlagKeysParam::Both,
            tracking: Tracking::Passthrough,
            budget_rps: 0.0,
            budget_burst: 20,
            budget_mode: BudgetMode::Enforce,
            budget_max_deployments: 10_000,
        }
    }
}

impl CacheConfig {
    /// The flags segment's bytes: `flags_percent` of `max_bytes` (the rest is for answers).
    pub fn flags_bytes(&self) -> u64 {
        let percent = self.flags_percent.min(100);
        u64::try_from(u128::from(self.max_bytes) * u128::from(percent) / 100).unwrap_or(0)
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 256 * 1024 * 1024,
            flags_percent: 10,
            ttl_s: 60,
            flags_ttl_s: 30,
            max_ttl_s: 3600,
            ignore_upstream_cache_control: false,
            stale_while_revalidate_s: 10,
            stale_if_error_s: 3600,
            negative_ttl_s: 5,
            sweep_interval_s: 60,
            eviction: Eviction::Lru,
            spelling_memo_entries: 4096,
            spelling_memo_max_bytes: 2048,
            client_cache_control: crate::response::client_cache::DEFAULT.into(),
        }
    }
}

/// Durations, derived once so the request path never converts units.
impl ServerConfig {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }
    pub fn keepalive_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.keepalive_idle_timeout_ms)
    }
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

impl UpstreamConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
    pub fn pool_idle_timeout(&self) -> Duration {
        Duration::from_millis(self.pool_idle_timeout_ms)
    }
}

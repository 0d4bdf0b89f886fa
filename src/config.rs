//! Configuration: the `config.toml` schema, its defaults, and validation.
//!
//! Parse, validate, then bind: [`Config::from_toml_str`] rejects unknown keys and
//! [`Config::validate`] rejects zero or absurd values, so a bad file stops the process
//! (exit 64) before any socket is opened. Every limit the gateway enforces lives here.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http::Uri;
use serde::{Deserialize, Serialize};

/// The whole configuration, one struct per `[section]` of `config.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub upstream: UpstreamConfig,
    pub cache: CacheConfig,
    pub embedded: EmbeddedConfig,
    pub admin: AdminConfig,
    pub access_log: AccessLogConfig,
    pub invalidation: InvalidationConfig,
    pub log: LogConfig,
}

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
    /// A keep-alive connection with no request in flight is closed after this time.
    pub keepalive_idle_timeout_ms: u64,
    /// On SIGINT/SIGTERM, in-flight requests get this long to finish.
    pub shutdown_timeout_ms: u64,
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
    /// Idle pooled connections are closed after this; keep it below the upstream's own.
    pub pool_idle_timeout_ms: u64,
    /// Idle pooled connections kept per upstream host.
    pub pool_max_idle_per_host: usize,
    /// Largest upstream response body accepted; larger is a 502.
    pub max_response_bytes: usize,
    /// Query parameter name(s) the canonical flag-key list is forwarded under.
    pub flag_keys_param: FlagKeysParam,
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
    /// Upper bound on key + body + stored headers of all entries, in bytes.
    pub max_bytes: u64,
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
    /// Which entry goes when the cache is full.
    pub eviction: Eviction,
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

/// `[embedded]`: the in-process evaluation engine used when `upstream.url = "embedded"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Flag configurations (a JSON array, as `/sdk/v2/flags` serves them). A relative path
    /// is resolved against the config file's directory.
    pub flags_file: String,
    /// Deployment keys that may read these flags; any other key gets 401.
    pub deployment_keys: Vec<String>,
    /// How often the flags file is checked for changes.
    pub reload_interval_ms: u64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            flags_file: "flags.json".into(),
            deployment_keys: vec!["server-evalgate-demo-key".into()],
            reload_interval_ms: 1_000,
        }
    }
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
            keepalive_idle_timeout_ms: 60_000,
            shutdown_timeout_ms: 10_000,
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
            pool_idle_timeout_ms: 30_000,
            pool_max_idle_per_host: 256,
            max_response_bytes: 4 * 1024 * 1024,
            flag_keys_param: FlagKeysParam::Both,
        }
    }
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            max_bytes: 256 * 1024 * 1024,
            ttl_s: 60,
            flags_ttl_s: 30,
            max_ttl_s: 3600,
            ignore_upstream_cache_control: false,
            stale_while_revalidate_s: 10,
            stale_if_error_s: 3600,
            negative_ttl_s: 5,
            eviction: Eviction::Lru,
        }
    }
}

/// A configuration problem: which key, and what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("`{key}`: {problem}")]
    Invalid { key: &'static str, problem: String },
}

const KIB: u64 = 1024;
const GIB: u64 = 1024 * 1024 * 1024;
const HOUR_MS: u64 = 3_600_000;
const YEAR_S: u64 = 365 * 24 * 3600;

impl Config {
    /// Reads and validates a config file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::from_toml_str(&text)
    }

    /// Parses TOML text (unknown keys are errors) without validating values.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let mut path = e.path().to_string();
            // toml's own message carries a multi-line snippet; keep its first line only.
            let inner = e.into_inner();
            let message = inner.message().lines().next().unwrap_or("").to_string();
            // A syntax error has no key path: name the line instead.
            if path == "." {
                if let Some(span) = inner.span() {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    path = format!("line {line}");
                }
            }
            ConfigError::Parse { path, message }
        })
    }

    /// Checks every value; the first problem found is returned.
    pub fn validate(self) -> Result<Config, ConfigError> {
        self.server
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| invalid("server.listen", format!("not an IP:port address ({e})")))?;
        let s = &self.server;
        range("server.worker_threads", s.worker_threads as u64, 0, 1024)?;
        range(
            "server.max_connections",
            s.max_connections as u64,
            1,
            1_000_000,
        )?;
        range(
            "server.max_query_bytes",
            s.max_query_bytes as u64,
            256,
            64 * KIB - 2,
        )?;
        range(
            "server.max_context_bytes",
            s.max_context_bytes as u64,
            2,
            64 * KIB,
        )?;
        range(
            "server.max_header_bytes",
            s.max_header_bytes as u64,
            KIB,
            1024 * KIB,
        )?;
        range(
            "server.max_body_bytes",
            s.max_body_bytes as u64,
            1,
            64 * 1024 * KIB,
        )?;
        range(
            "server.header_read_timeout_ms",
            s.header_read_timeout_ms,
            1,
            HOUR_MS,
        )?;
        range(
            "server.keepalive_idle_timeout_ms",
            s.keepalive_idle_timeout_ms,
            1,
            24 * HOUR_MS,
        )?;
        range(
            "server.shutdown_timeout_ms",
            s.shutdown_timeout_ms,
            0,
            HOUR_MS,
        )?;

        if self.upstream.url == crate::upstream::EMBEDDED {
            let e = &self.embedded;
            if e.flags_file.is_empty() {
                return Err(invalid("embedded.flags_file", "must name a file".into()));
            }
            if e.deployment_keys.is_empty() {
                return Err(invalid(
                    "embedded.deployment_keys",
                    "must list at least one key".into(),
                ));
            }
            if let Some(bad) = e
                .deployment_keys
                .iter()
                .find(|k| k.is_empty() || !k.bytes().all(|b| b.is_ascii_graphic()))
            {
                return Err(invalid(
                    "embedded.deployment_keys",
                    format!("`{bad}` is not a key (visible ASCII, no spaces)"),
                ));
            }
            range(
                "embedded.reload_interval_ms",
                e.reload_interval_ms,
                10,
                24 * HOUR_MS,
            )?;
        } else {
            upstream_base(&self.upstream.url)?;
        }
        let u = &self.upstream;
        range("upstream.timeout_ms", u.timeout_ms, 1, HOUR_MS)?;
        range(
            "upstream.connect_timeout_ms",
            u.connect_timeout_ms,
            1,
            HOUR_MS,
        )?;
        range("upstream.max_inflight", u.max_inflight as u64, 1, 1_000_000)?;
        range(
            "upstream.pool_idle_timeout_ms",
            u.pool_idle_timeout_ms,
            1,
            24 * HOUR_MS,
        )?;
        range(
            "upstream.pool_max_idle_per_host",
            u.pool_max_idle_per_host as u64,
            0,
            100_000,
        )?;
        range(
            "upstream.max_response_bytes",
            u.max_response_bytes as u64,
            KIB,
            GIB,
        )?;

        range(
            "cache.max_bytes",
            self.cache.max_bytes,
            64 * KIB,
            1024 * GIB,
        )?;
        // moka panics on a TTL beyond 1,000 years; one year is already absurd for flags.
        range("cache.ttl_s", self.cache.ttl_s, 1, YEAR_S)?;
        range("cache.flags_ttl_s", self.cache.flags_ttl_s, 1, YEAR_S)?;
        range("cache.max_ttl_s", self.cache.max_ttl_s, 1, YEAR_S)?;
        range(
            "cache.stale_while_revalidate_s",
            self.cache.stale_while_revalidate_s,
            0,
            YEAR_S,
        )?;
        range(
            "cache.stale_if_error_s",
            self.cache.stale_if_error_s,
            0,
            YEAR_S,
        )?;
        range("cache.negative_ttl_s", self.cache.negative_ttl_s, 0, 3600)?;
        if !self.admin.listen.is_empty() {
            let admin: SocketAddr =
                self.admin.listen.parse().map_err(|e| {
                    invalid("admin.listen", format!("not an IP:port address ({e})"))
                })?;
            if admin.port() == self.listen_addr().port() && admin.port() != 0 {
                return Err(invalid(
                    "admin.listen",
                    "must not use the port of server.listen".into(),
                ));
            }
        }
        range(
            "admin.ready_upstream_window_s",
            self.admin.ready_upstream_window_s,
            1,
            24 * 3600,
        )?;
        if self.admin.token.chars().any(|c| !c.is_ascii_graphic()) {
            return Err(invalid(
                "admin.token",
                "must be visible ASCII without spaces".into(),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err(invalid("log.level", format!("not a log filter ({e})")));
        }
        if !self.invalidation.flags_url.is_empty() {
            upstream_base(&self.invalidation.flags_url).map_err(|e| match e {
                ConfigError::Invalid { problem, .. } => invalid("invalidation.flags_url", problem),
                other => other,
            })?;
            range(
                "invalidation.poll_interval_s",
                self.invalidation.poll_interval_s,
                1,
                24 * 3600,
            )?;
        }
        if !(0.0..=1.0).contains(&self.access_log.sample_rate) {
            return Err(invalid(
                "access_log.sample_rate",
                format!(
                    "must be between 0.0 and 1.0 (got {})",
                    self.access_log.sample_rate
                ),
            ));
        }
        Ok(self)
    }

    /// The listen address; valid after [`Config::validate`].
    pub fn listen_addr(&self) -> SocketAddr {
        self.server
            .listen
            .parse()
            .expect("validated listen address")
    }

    /// Resolves relative paths in the config against `dir` (the config file's directory).
    pub fn resolve_paths(&mut self, dir: &Path) {
        let flags = Path::new(&self.embedded.flags_file);
        if flags.is_relative() && !self.embedded.flags_file.is_empty() {
            self.embedded.flags_file = dir.join(flags).display().to_string();
        }
    }

    /// The effective settings as TOML, for `--check`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serializes")
    }
}

/// Durations, derived once so the request path never converts units.
impl ServerConfig {
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
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

/// Parses and checks an upstream base URL; returns it without a trailing slash.
pub fn upstream_base(url: &str) -> Result<String, ConfigError> {
    let bad = |problem: String| invalid("upstream.url", problem);
    let uri: Uri = url
        .parse()
        .map_err(|e| bad(format!("`{url}` is not a URL ({e})")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => return Err(bad(format!("`{url}` must start with http:// or https://"))),
    }
    if uri.authority().is_none() {
        return Err(bad(format!("`{url}` has no host")));
    }
    if uri.query().is_some() {
        return Err(bad(format!("`{url}` must not have a query")));
    }
    Ok(url.trim_end_matches('/').to_string())
}

fn invalid(key: &'static str, problem: String) -> ConfigError {
    ConfigError::Invalid { key, problem }
}

fn range(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(invalid(
            key,
            format!("must be between {min} and {max} (got {value})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn unknown_key_names_its_path() {
        let err = Config::from_toml_str("[cache]\nttl = 5\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("cache.ttl"), "{msg}");
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn zero_ttl_is_rejected() {
        let cfg = Config::from_toml_str("[cache]\nttl_s = 0\n").unwrap();
        let msg = cfg.validate().unwrap_err().to_string();
        assert!(msg.starts_with("`cache.ttl_s`"), "{msg}");
    }

    #[test]
    fn absurd_ttl_is_rejected() {
        let cfg = Config::from_toml_str("[cache]\nttl_s = 99999999999\n").unwrap();
        assert!(cfg.validate().is_err());
    }

    #[test]
    fn bad_upstream_url_is_rejected() {
        for url in ["ftp://x", "not a url", "http://h/p?q=1", "/just/a/path"] {
            let mut cfg = Config::default();
            cfg.upstream.url = url.into();
            let msg = cfg.validate().unwrap_err().to_string();
            assert!(msg.contains("upstream.url"), "{url}: {msg}");
        }
    }

    #[test]
    fn wrong_type_names_its_path() {
        let msg = Config::from_toml_str("[upstream]\ntimeout_ms = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(msg.contains("upstream.timeout_ms"), "{msg}");
    }

    #[test]
    fn syntax_error_names_its_line() {
        let msg = Config::from_toml_str("[server]\nlisten = \"x\"\n[cache\n")
            .unwrap_err()
            .to_string();
        assert!(msg.starts_with("line 3:"), "{msg}");
    }

    #[test]
    fn admin_and_log_keys_are_checked() {
        for (text, key) in [
            (
                "[admin]\nready_upstream_window_s = 0\n",
                "admin.ready_upstream_window_s",
            ),
            ("[admin]\ntoken = \"has space\"\n", "admin.token"),
            ("[admin]\nlisten = \"127.0.0.2:8080\"\n", "admin.listen"),
            ("[log]\nlevel = \"evalgate=notalevel\"\n", "log.level"),
        ] {
            let cfg = Config::from_toml_str(text).unwrap();
            let msg = cfg.validate().unwrap_err().to_string();
            assert!(msg.starts_with(&format!("`{key}`")), "{text}: {msg}");
        }
    }

    #[test]
    fn effective_settings_round_trip() {
        let cfg = Config::default();
        let again = Config::from_toml_str(&cfg.to_toml()).unwrap();
        assert_eq!(cfg, again);
    }
}

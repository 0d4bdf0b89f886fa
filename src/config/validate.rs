//! Validation: every value checked against its range before anything starts.

use std::net::SocketAddr;

use super::url::base_url;
use super::{Config, ConfigError};

const KIB: u64 = 1024;
const GIB: u64 = 1024 * 1024 * 1024;
const HOUR_MS: u64 = 3_600_000;
const YEAR_S: u64 = 365 * 24 * 3600;

impl Config {
    /// Checks every value; the first problem found is returned.
    pub fn validate(self) -> Result<Config, ConfigError> {
        if !self.server.listen.is_empty() {
            self.server
                .listen
                .parse::<SocketAddr>()
                .map_err(|e| invalid("server.listen", format!("not an IP:port address ({e})")))?;
        } else if !self.tls.enabled() {
            return Err(invalid(
                "server.listen",
                "is empty and so is tls.listen: at least one listener must be configured".into(),
            ));
        }
        self.tls.validate()?;
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
            "server.body_read_timeout_ms",
            s.body_read_timeout_ms,
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
            self.embedded.validate()?;
        } else {
            base_url("upstream.url", &self.upstream.url)?;
        }
        self.shared_cache.validate()?;
        self.compression.validate()?;
        self.simulation.validate()?;
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
            "upstream.max_abandoned_fills",
            u.max_abandoned_fills as u64,
            0,
            1_000_000,
        )?;
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
        range("upstream.pipeline_depth", u.pipeline_depth as u64, 1, 1024)?;
        super::guard::validate(u)?;
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
        range("cache.flags_percent", self.cache.flags_percent, 1, 50)?;
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
        range(
            "cache.sweep_interval_s",
            self.cache.sweep_interval_s,
            1,
            86_400,
        )?;
        range(
            "cache.spelling_memo_entries",
            self.cache.spelling_memo_entries as u64,
            0,
            1 << 20,
        )?;
        // Below ~256 bytes no spelling with a deployment key fits.
        range(
            "cache.spelling_memo_max_bytes",
            self.cache.spelling_memo_max_bytes as u64,
            256,
            64 * KIB,
        )?;
        if (self.cache.spelling_memo_entries as u64) * (self.cache.spelling_memo_max_bytes as u64)
            > GIB
        {
            return Err(invalid(
                "cache.spelling_memo_entries",
                "times cache.spelling_memo_max_bytes must not exceed 1 GiB".into(),
            ));
        }
        client_cache_control(&self.cache.client_cache_control)?;
        self.cors.validate()?;
        if !self.admin.listen.is_empty() {
            let admin: SocketAddr =
                self.admin.listen.parse().map_err(|e| {
                    invalid("admin.listen", format!("not an IP:port address ({e})"))
                })?;
            let public = [&self.server.listen, &self.tls.listen];
            for (name, listen) in ["server.listen", "tls.listen"].iter().zip(public) {
                let port = listen.parse::<SocketAddr>().map(|a| a.port()).ok();
                if port == Some(admin.port()) && admin.port() != 0 {
                    return Err(invalid(
                        "admin.listen",
                        format!("must not use the port of {name}"),
                    ));
                }
            }
        }
        if let (Ok(plain), Ok(tls)) = (
            self.server.listen.parse::<SocketAddr>(),
            self.tls.listen.parse::<SocketAddr>(),
        ) && plain.port() == tls.port()
            && plain.port() != 0
        {
            return Err(invalid(
                "tls.listen",
                "must not use the port of server.listen".into(),
            ));
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
            base_url("invalidation.flags_url", &self.invalidation.flags_url)?;
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
}

/// `cache.client_cache_control`: one header value (visible ASCII and spaces), at most
/// 1 KiB.
pub(crate) fn client_cache_control(value: &str) -> Result<(), ConfigError> {
    let key = "cache.client_cache_control";
    if value.len() > KIB as usize {
        return Err(invalid(key, "must be at most 1024 bytes".into()));
    }
    if value.trim() != value || !value.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return Err(invalid(
            key,
            "must be a Cache-Control value: visible ASCII, no leading or trailing space".into(),
        ));
    }
    Ok(())
}

pub(super) fn invalid(key: &'static str, problem: String) -> ConfigError {
    ConfigError::Invalid { key, problem }
}

pub(super) fn range(key: &'static str, value: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(invalid(
            key,
            format!("must be between {min} and {max} (got {value})"),
        ));
    }
    Ok(())
}

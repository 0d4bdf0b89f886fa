//! Settings that change while evalgate runs (SIGHUP, see [`crate::reload`]): the request
//! limits, whether underscored header names are forwarded, the cache lifetimes, the access
//! log, the admin token and the readiness window.
//!
//! Each value is its own atomic, read with a relaxed load where it is used: no lock and no
//! reference count on the request path. A reload stores the values one by one, so a
//! request racing a reload may see some old and some new values; each is valid alone.
//! Everything else in [`Config`] is fixed at start-up ([`LIVE_KEYS`] lists what is not).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::access_log::AccessLog;
use crate::config::{CacheConfig, Config};
use crate::normalize::Limits;

/// The `config.toml` keys a reload applies; any other changed key is reported and ignored.
pub const LIVE_KEYS: &[&str] = &[
    "server.max_query_bytes",
    "server.max_context_bytes",
    "server.max_header_bytes",
    "server.max_body_bytes",
    "server.underscores_in_headers",
    "cache.ttl_s",
    "cache.flags_ttl_s",
    "cache.max_ttl_s",
    "cache.ignore_upstream_cache_control",
    "cache.stale_while_revalidate_s",
    "cache.stale_if_error_s",
    "cache.negative_ttl_s",
    "access_log.enabled",
    "access_log.sample_rate",
    "admin.token",
    "admin.ready_upstream_window_s",
    "log.level",
];

/// The live values; owned by [`crate::Gateway`].
pub struct LiveSettings {
    max_query_bytes: AtomicUsize,
    max_context_bytes: AtomicUsize,
    max_header_bytes: AtomicUsize,
    max_body_bytes: AtomicUsize,
    underscores_in_headers: AtomicBool,
    ttl_s: AtomicU64,
    flags_ttl_s: AtomicU64,
    max_ttl_s: AtomicU64,
    ignore_upstream_cache_control: AtomicBool,
    stale_while_revalidate_s: AtomicU64,
    stale_if_error_s: AtomicU64,
    negative_ttl_s: AtomicU64,
    ready_upstream_window_s: AtomicU64,
    access_log: AccessLog,
    /// Read once per admin request, never on the public path.
    admin_token: RwLock<Arc<str>>,
    /// The fixed parts, completed with the live values by [`LiveSettings::cache`] and
    /// [`LiveSettings::limits`].
    startup_cache: CacheConfig,
    startup_limits: Limits,
    /// The configuration now in force (start-up, then each reload's live keys), which the
    /// next reload is compared with.
    running: Mutex<Config>,
}

impl LiveSettings {
    pub fn new(config: &Config) -> LiveSettings {
        let live = LiveSettings {
            max_query_bytes: AtomicUsize::new(0),
            max_context_bytes: AtomicUsize::new(0),
            max_header_bytes: AtomicUsize::new(0),
            max_body_bytes: AtomicUsize::new(0),
            underscores_in_headers: AtomicBool::new(false),
            ttl_s: AtomicU64::new(0),
            flags_ttl_s: AtomicU64::new(0),
            max_ttl_s: AtomicU64::new(0),
            ignore_upstream_cache_control: AtomicBool::new(false),
            stale_while_revalidate_s: AtomicU64::new(0),
            stale_if_error_s: AtomicU64::new(0),
            negative_ttl_s: AtomicU64::new(0),
            ready_upstream_window_s: AtomicU64::new(0),
            access_log: AccessLog::default(),
            admin_token: RwLock::new(Arc::from("")),
            startup_cache: config.cache.clone(),
            startup_limits: Limits {
                max_context_bytes: config.server.max_context_bytes,
                flag_keys_param: config.upstream.flag_keys_param,
                tracking: config.upstream.tracking,
            },
            running: Mutex::new(config.clone()),
        };
        live.store(config);
        live
    }

    /// Stores the live keys of `config` (validated) and makes them the running values.
    /// Returns the configuration now in force.
    pub fn apply(&self, config: &Config) -> Config {
        self.store(config);
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let r = &mut *running;
        r.server.max_query_bytes = config.server.max_query_bytes;
        r.server.max_context_bytes = config.server.max_context_bytes;
        r.server.max_header_bytes = config.server.max_header_bytes;
        r.server.max_body_bytes = config.server.max_body_bytes;
        r.server.underscores_in_headers = config.server.underscores_in_headers;
        let (c, n) = (&mut r.cache, &config.cache);
        c.ttl_s = n.ttl_s;
        c.flags_ttl_s = n.flags_ttl_s;
        c.max_ttl_s = n.max_ttl_s;
        c.ignore_upstream_cache_control = n.ignore_upstream_cache_control;
        c.stale_while_revalidate_s = n.stale_while_revalidate_s;
        c.stale_if_error_s = n.stale_if_error_s;
        c.negative_ttl_s = n.negative_ttl_s;
        r.access_log = config.access_log.clone();
        r.admin.token = config.admin.token.clone();
        r.admin.ready_upstream_window_s = config.admin.ready_upstream_window_s;
        r.log = config.log.clone();
        running.clone()
    }

    /// The configuration now in force.
    pub fn running(&self) -> Config {
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn store(&self, config: &Config) {
        let set = |a: &AtomicUsize, v: usize| a.store(v, Ordering::Relaxed);
        let s = &config.server;
        set(&self.max_query_bytes, s.max_query_bytes);
        set(&self.max_context_bytes, s.max_context_bytes);
        set(&self.max_header_bytes, s.max_header_bytes);
        set(&self.max_body_bytes, s.max_body_bytes);
        self.underscores_in_headers
            .store(s.underscores_in_headers, Ordering::Relaxed);
        let set = |a: &AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        let c = &config.cache;
        set(&self.ttl_s, c.ttl_s);
        set(&self.flags_ttl_s, c.flags_ttl_s);
        set(&self.max_ttl_s, c.max_ttl_s);
        self.ignore_upstream_cache_control
            .store(c.ignore_upstream_cache_control, Ordering::Relaxed);
        set(&self.stale_while_revalidate_s, c.stale_while_revalidate_s);
        set(&self.stale_if_error_s, c.stale_if_error_s);
        set(&self.negative_ttl_s, c.negative_ttl_s);
        set(
            &self.ready_upstream_window_s,
            config.admin.ready_upstream_window_s,
        );
        self.access_log.configure(&config.access_log);
        *self.admin_token.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::from(config.admin.token.as_str());
    }

    pub fn max_query_bytes(&self) -> usize {
        self.max_query_bytes.load(Ordering::Relaxed)
    }

    pub fn max_header_bytes(&self) -> usize {
        self.max_header_bytes.load(Ordering::Relaxed)
    }

    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes.load(Ordering::Relaxed)
    }

    /// `server.underscores_in_headers`: whether passthrough forwards header names with `_`.
    pub fn underscores_in_headers(&self) -> bool {
        self.underscores_in_headers.load(Ordering::Relaxed)
    }

    /// The normalization limits (`server.max_context_bytes` live).
    pub fn limits(&self) -> Limits {
        Limits {
            max_context_bytes: self.max_context_bytes.load(Ordering::Relaxed),
            ..self.startup_limits
        }
    }

    /// `[cache]` with its live keys (lifetimes) as they are now; the rest as at start-up.
    pub fn cache(&self) -> CacheConfig {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheConfig {
            ttl_s: get(&self.ttl_s),
            flags_ttl_s: get(&self.flags_ttl_s),
            max_ttl_s: get(&self.max_ttl_s),
            ignore_upstream_cache_control: self
                .ignore_upstream_cache_control
                .load(Ordering::Relaxed),
            stale_while_revalidate_s: get(&self.stale_while_revalidate_s),
            stale_if_error_s: get(&self.stale_if_error_s),
            negative_ttl_s: get(&self.negative_ttl_s),
            ..self.startup_cache.clone()
        }
    }

    pub fn access_log(&self) -> &AccessLog {
        &self.access_log
    }

    /// `admin.token`; empty when no token is required.
    pub fn admin_token(&self) -> Arc<str> {
        self.admin_token
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn ready_upstream_window(&self) -> Duration {
        Duration::from_secs(self.ready_upstream_window_s.load(Ordering::Relaxed))
    }
}

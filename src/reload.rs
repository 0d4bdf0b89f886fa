//! SIGHUP: re-read `config.toml`, apply what can change live ([`crate::live::LIVE_KEYS`]:
//! request limits, cache lifetimes, access log, admin token, readiness window, log level)
//! and report, at warn, each changed key that needs a restart. SIGHUP also re-reads the
//! HTTPS listener's certificate and key ([`crate::server::CertStore::reload_now`]), whatever
//! the config file holds.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::gateway::Gateway;
use crate::live::LIVE_KEYS;
use crate::logging::{LevelChange, LogLevel};
use crate::server::CertStore;

/// What one reload did, by dotted key name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Changed keys now in force.
    pub applied: Vec<String>,
    /// Changed keys that keep their start-up value until a restart.
    pub needs_restart: Vec<String>,
}

/// Applies `new` (validated) to `gateway` and `log`, compared with the configuration now
/// in force; logs the outcome.
pub fn apply(gateway: &Gateway, new: &Config, log: Option<&LogLevel>) -> Report {
    let live = gateway.live();
    let before = live.running();
    let mut report = Report::default();
    for key in changed_keys(&before, new) {
        if LIVE_KEYS.contains(&key.as_str()) {
            report.applied.push(key);
        } else {
            report.needs_restart.push(key);
        }
    }
    live.apply(new);
    if before.log.level != new.log.level {
        match log.map(|log| log.set(&new.log.level)) {
            Some(Ok(LevelChange::Applied)) | None => {}
            Some(Ok(LevelChange::OverriddenByEnv)) => {
                tracing::warn!("log.level not applied: RUST_LOG is set and takes precedence");
            }
            Some(Err(e)) => tracing::warn!(error = %e, "log.level not applied"),
        }
    }
    for key in &report.needs_restart {
        tracing::warn!(key = %key, "config reload: `{key}` changed but only takes effect after a restart");
    }
    tracing::info!(
        applied = %report.applied.join(","),
        needs_restart = report.needs_restart.len(),
        "config reloaded"
    );
    report
}

/// Listens for SIGHUP from now on (call it inside the runtime, before announcing the
/// process as started) and returns the loop: on each SIGHUP, `certs` (the HTTPS
/// listener's pair, when it is on) are re-read, and `load` re-reads the config and it is
/// applied; a file that does not load is logged and changes nothing. The loop never ends;
/// stop it by dropping it.
pub fn on_sighup<L>(
    gateway: Gateway,
    log: Option<LogLevel>,
    certs: Option<CertStore>,
    load: L,
) -> impl std::future::Future<Output = ()>
where
    L: Fn() -> Result<Config, String>,
{
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .inspect_err(|e| tracing::warn!(error = %e, "cannot listen for SIGHUP; config reload off"))
        .ok();
    async move {
        #[cfg(unix)]
        if let Some(mut hup) = hup {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP received: reloading the config");
                if let Some(certs) = &certs {
                    // File reads and parsing block: off the runtime, like the poll.
                    let (certs, metrics) = (certs.clone(), gateway.metrics().tls().clone());
                    let reload = tokio::task::spawn_blocking(move || certs.reload_now(&metrics));
                    if let Err(e) = reload.await {
                        tracing::warn!(error = %e, "TLS certificate reload failed");
                    }
                }
                match load() {
                    Ok(config) => {
                        apply(&gateway, &config, log.as_ref());
                    }
                    Err(e) => tracing::warn!(error = %e, "config reload failed; nothing changed"),
                }
            }
        }
        #[cfg(not(unix))]
        let _ = (gateway, log, certs, load);
        std::future::pending::<()>().await
    }
}

/// Dotted names of the keys whose values differ (a key present on one side only counts).
fn changed_keys(before: &Config, after: &Config) -> Vec<String> {
    let (a, b) = (flatten(before), flatten(after));
    let mut keys: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn flatten(config: &Config) -> BTreeMap<String, toml::Value> {
    let mut out = BTreeMap::new();
    if let Ok(toml::Value::Table(sections)) = toml::Value::try_from(config) {
        for (section, value) in sections {
            match value {
                toml::Value::Table(keys) => {
                    for (key, value) in keys {
                        out.insert(format!("{section}.{key}"), value);
                    }
                }
                other => {
                    out.insert(section, other);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_each_changed_key() {
        let before = Config::default();
        let mut after = before.clone();
        after.cache.ttl_s = 5;
        after.server.listen = "127.0.0.1:1".into();
        after.admin.token = "t".into();
        assert_eq!(
            changed_keys(&before, &after),
            ["admin.token", "cache.ttl_s", "server.listen"]
        );
    }

    #[test]
    fn every_live_key_exists() {
        let keys = flatten(&Config::default());
        for key in LIVE_KEYS {
            assert!(keys.contains_key(*key), "{key}");
        }
    }
}

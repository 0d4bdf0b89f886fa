//! Configuration: the `config.toml` schema, its defaults, and validation.
//!
//! Parse, validate, then bind: [`Config::from_toml_str`] rejects unknown keys and
//! [`Config::validate`] rejects zero or absurd values, so a bad file stops the process
//! (exit 64) before any socket is opened. Every limit the gateway enforces lives here:
//! the sections in [`sections`] (`[tls]`, `[compression]`, `[cors]`, `[embedded]`,
//! `[shared_cache]` and `[simulation]` each in its own file, with its checks; the upstream
//! guard rails, `upstream.tracking` and the budget, in [`guard`]), the checks in
//! [`validate`], and in [`url`] the one check every URL setting goes through.

mod compression;
mod cors;
mod embedded;
mod guard;
mod sections;
mod shared_cache;
mod simulation;
mod tls;
mod url;
mod validate;

pub use compression::CompressionConfig;
pub use cors::CorsConfig;
pub use embedded::EmbeddedDeployment;
pub use guard::{BudgetMode, MAX_BUDGET_RPS, Tracking};
pub use sections::*;
pub use shared_cache::{SharedCacheConfig, without_password};
pub use simulation::{AppliesTo, SimulationConfig};
pub use tls::TlsConfig;
pub use url::base_url;
pub(crate) use validate::client_cache_control;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The whole configuration, one struct per `[section]` of `config.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub tls: TlsConfig,
    pub upstream: UpstreamConfig,
    pub cache: CacheConfig,
    pub cors: CorsConfig,
    pub embedded: EmbeddedConfig,
    pub admin: AdminConfig,
    pub access_log: AccessLogConfig,
    pub invalidation: InvalidationConfig,
    pub shared_cache: SharedCacheConfig,
    pub compression: CompressionConfig,
    pub simulation: SimulationConfig,
    pub log: LogConfig,
}

/// A configuration problem: which key, and what is wrong with it. Displayed as one line:
/// the keys and values it quotes are written with their control characters escaped.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", one_line(.path))]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {}", one_line(.path), one_line(.message))]
    Parse { path: String, message: String },
    #[error("`{key}`: {}", one_line(.problem))]
    Invalid { key: &'static str, problem: String },
}

/// `text` with control characters escaped (a line break as `\n`), so a key or value
/// quoted in a message cannot break the message's line.
fn one_line(text: &str) -> Cow<'_, str> {
    if !text.contains(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

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
            let inner = e.into_inner();
            let mut message = inner.message();
            // A syntax error has no key path: name the line instead, and keep toml's
            // headline (the lines after it detail the spot). Any other message is kept
            // whole: a line break in it is one in a key or value it quotes.
            if path == "." {
                message = message.lines().next().unwrap_or("");
                if let Some(span) = inner.span() {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    path = format!("line {line}");
                }
            }
            ConfigError::Parse {
                path,
                message: message.to_string(),
            }
        })
    }

    /// The cleartext listen address; valid after [`Config::validate`] when
    /// `server.listen` is not empty.
    pub fn listen_addr(&self) -> SocketAddr {
        self.server
            .listen
            .parse()
            .expect("validated listen address")
    }

    /// Resolves relative paths in the config against `dir` (the config file's directory).
    pub fn resolve_paths(&mut self, dir: &Path) {
        let ca = Path::new(&self.shared_cache.ca_file);
        if ca.is_relative() && !self.shared_cache.ca_file.is_empty() {
            self.shared_cache.ca_file = dir.join(ca).display().to_string();
        }
        for file in [&mut self.tls.cert_file, &mut self.tls.key_file] {
            if Path::new(file.as_str()).is_relative() && !file.is_empty() {
                *file = dir.join(file.as_str()).display().to_string();
            }
        }
        self.embedded.resolve_paths(dir);
    }

    /// The effective settings as TOML, for `--check`.
    /// Secrets are not printed: `shared_cache.key_secret` and any password in a Redis URL.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        let sc = &mut shown.shared_cache;
        if !sc.key_secret.is_empty() {
            sc.key_secret = "***".into();
        }
        sc.url = without_password(&sc.url);
        for node in &mut sc.cluster_nodes {
            *node = without_password(node);
        }
        toml::to_string(&shown).expect("config serializes")
    }
}

#[cfg(test)]
mod tests;

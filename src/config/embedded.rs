//! `[embedded]`: the in-process evaluation engine used when `upstream.url = "embedded"`,
//! its two forms, and their checks.
//!
//! - The one-file form: `embedded.flags_file` served to every key in
//!   `embedded.deployment_keys`.
//! - `[[embedded.deployments]]`: one `key` and its own `flags_file` per entry, so each
//!   deployment sees only its flags, as on Amplitude.
//!
//! Both may be combined. `embedded.deployment_keys` defaults to the demo key only when
//! there are no `[[embedded.deployments]]`; with them, the one-file form is on only when
//! `deployment_keys` is written out. A key listed twice (in either form) is an error.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::sections::EmbeddedConfig;
use super::validate::{invalid, range};
use crate::mask::Masked;

const HOUR_MS: u64 = 3_600_000;
/// The one-file form's default key (the shipped demo).
const DEMO_KEY: &str = "server-evalgate-demo-key";

/// One `[[embedded.deployments]]` entry: a deployment key and the flags it sees.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedDeployment {
    pub key: String,
    /// Relative to the config file's directory, like `embedded.flags_file`.
    pub flags_file: String,
}

/// `[embedded]` as written: which keys are present decides the defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmbedded {
    flags_file: Option<String>,
    deployment_keys: Option<Vec<String>>,
    reload_interval_ms: Option<u64>,
    #[serde(default)]
    deployments: Vec<EmbeddedDeployment>,
}

impl From<RawEmbedded> for EmbeddedConfig {
    fn from(raw: RawEmbedded) -> EmbeddedConfig {
        let default = EmbeddedConfig::default();
        let deployment_keys = match raw.deployment_keys {
            Some(keys) => keys,
            None if raw.deployments.is_empty() => default.deployment_keys,
            None => Vec::new(),
        };
        EmbeddedConfig {
            flags_file: raw.flags_file.unwrap_or(default.flags_file),
            deployment_keys,
            reload_interval_ms: raw.reload_interval_ms.unwrap_or(default.reload_interval_ms),
            deployments: raw.deployments,
        }
    }
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            flags_file: "flags.json".into(),
            deployment_keys: vec![DEMO_KEY.into()],
            reload_interval_ms: 1_000,
            deployments: Vec::new(),
        }
    }
}

impl EmbeddedConfig {
    /// Every file served, each with the keys that see it, in config order (the one-file
    /// form first); entries naming the same file share it.
    pub fn files(&self) -> Vec<(String, Vec<String>)> {
        let mut files: Vec<(String, Vec<String>)> = Vec::new();
        let one_file = self.deployment_keys.iter().map(|k| (k, &self.flags_file));
        let entries = self.deployments.iter().map(|d| (&d.key, &d.flags_file));
        for (key, file) in one_file.chain(entries) {
            match files.iter_mut().find(|(f, _)| f == file) {
                Some((_, keys)) => keys.push(key.clone()),
                None => files.push((file.clone(), vec![key.clone()])),
            }
        }
        files
    }

    /// The setting that names `file`, for an error about it: `embedded.flags_file` when
    /// the one-file form serves it, else `embedded.deployments`.
    pub fn setting_of(&self, file: &str) -> &'static str {
        let one_file = !self.deployment_keys.is_empty() && self.flags_file == file;
        if one_file || !self.deployments.iter().any(|d| d.flags_file == file) {
            "embedded.flags_file"
        } else {
            "embedded.deployments"
        }
    }

    /// Relative flags files resolved against `dir`.
    pub(super) fn resolve_paths(&mut self, dir: &Path) {
        let files = std::iter::once(&mut self.flags_file)
            .chain(self.deployments.iter_mut().map(|d| &mut d.flags_file));
        for file in files {
            if Path::new(file.as_str()).is_relative() && !file.is_empty() {
                *file = dir.join(file.as_str()).display().to_string();
            }
        }
    }

    /// The checks that apply when the engine is the upstream.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.deployment_keys.is_empty() && self.deployments.is_empty() {
            return Err(invalid(
                "embedded.deployment_keys",
                "must list at least one key (or add [[embedded.deployments]])".into(),
            ));
        }
        if !self.deployment_keys.is_empty() && self.flags_file.is_empty() {
            return Err(invalid("embedded.flags_file", "must name a file".into()));
        }
        let mut seen: HashMap<&str, &'static str> = HashMap::new();
        let keys = self
            .deployment_keys
            .iter()
            .map(|k| ("embedded.deployment_keys", k))
            .chain(
                self.deployments
                    .iter()
                    .map(|d| ("embedded.deployments", &d.key)),
            );
        for (setting, key) in keys {
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(
                    setting,
                    format!(
                        "`{}` is not a key (visible ASCII, no spaces)",
                        crate::mask::Masked(key)
                    ),
                ));
            }
            if let Some(first) = seen.insert(key, setting) {
                let also = if first == setting {
                    String::new()
                } else {
                    format!(" (also in {first})")
                };
                return Err(invalid(
                    setting,
                    format!("key {} is listed twice{also}", Masked(key)),
                ));
            }
        }
        if let Some(d) = self.deployments.iter().find(|d| d.flags_file.is_empty()) {
            return Err(invalid(
                "embedded.deployments",
                format!(
                    "the entry for key {} must name a flags_file",
                    Masked(&d.key)
                ),
            ));
        }
        range(
            "embedded.reload_interval_ms",
            self.reload_interval_ms,
            10,
            24 * HOUR_MS,
        )
    }
}

//! Logging setup: text or JSON lines on stderr, filtered by `RUST_LOG` when set, else by
//! `log.level`; the filter can be replaced while running (SIGHUP) through [`LogLevel`].

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

/// The log line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Replaces the installed filter. Cheap to clone.
#[derive(Clone)]
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
    /// `RUST_LOG` was set at start: it wins over `log.level`, then and on reloads.
    from_env: bool,
}

/// What [`LogLevel::set`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum LevelChange {
    Applied,
    /// `RUST_LOG` is set and keeps precedence.
    OverriddenByEnv,
}

impl LogLevel {
    /// Installs `level` (a `tracing` filter) unless `RUST_LOG` was set at start.
    pub fn set(&self, level: &str) -> Result<LevelChange, String> {
        if self.from_env {
            return Ok(LevelChange::OverriddenByEnv);
        }
        let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        self.handle
            .reload(filter)
            .map(|()| LevelChange::Applied)
            .map_err(|e| e.to_string())
    }
}

/// Installs the global subscriber: `RUST_LOG` if set, else `level` (`log.level`).
pub fn init(format: LogFormat, level: &str) -> LogLevel {
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Text => registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_writer(std::io::stderr),
            )
            .init(),
    }
    LogLevel { handle, from_env }
}

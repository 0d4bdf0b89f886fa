//! The `evalgate` binary: flags, logging, config, bind, run.
//!
//! Run with `cargo run --release -- --config config.toml`.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use evalgate::logging::{self, LogFormat};
use evalgate::{Config, Gateway};
use futures_util::FutureExt;

/// Exit status for a bad configuration (`EX_USAGE`).
const EX_CONFIG: u8 = 64;
/// The config file read when `--config` is not given; built-in defaults when absent.
const DEFAULT_CONFIG: &str = "config.toml";

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A caching gateway for Amplitude Experiment remote evaluation"
)]
struct Cli {
    /// Config file [default: ./config.toml, or built-in defaults when there is none].
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Listen address, overriding `server.listen`.
    #[arg(long, env = "EVALGATE_LISTEN")]
    listen: Option<String>,
    /// Upstream base URL, overriding `upstream.url`.
    #[arg(long, env = "EVALGATE_UPSTREAM")]
    upstream: Option<String>,
    /// Validate the config, print the effective settings and exit.
    #[arg(long)]
    check: bool,
    /// Log line format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match load(&cli) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("evalgate: config error: {message}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    // Building the gateway loads what the config names (the embedded flags file), still
    // before any socket is opened.
    let gateway = match Gateway::new(config) {
        Ok(gateway) => gateway,
        Err(e) => {
            eprintln!("evalgate: config error: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let config = gateway.config().clone();
    if cli.check {
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    logging::init(cli.log_format);

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if config.server.worker_threads > 0 {
        runtime.worker_threads(config.server.worker_threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("evalgate: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        // Install the SIGINT/SIGTERM handlers (first poll) before the start-up line
        // announces the address: a signal sent as soon as it appears must drain, not kill.
        let mut shutdown = Box::pin(evalgate::shutdown::signal());
        let signalled_early = shutdown.as_mut().now_or_never().is_some();
        let shutdown = async move {
            if !signalled_early {
                shutdown.await;
            }
        };
        let addr = config.listen_addr();
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            listen = %listener.local_addr().map_or(addr, |a| a),
            upstream = %config.upstream.url,
            cache_max_bytes = config.cache.max_bytes,
            cache_ttl_s = config.cache.ttl_s,
            "evalgate {} started",
            env!("CARGO_PKG_VERSION")
        );
        evalgate::serve(listener, gateway, shutdown).await;
        ExitCode::SUCCESS
    })
}

/// Reads the config file (or defaults), applies the overrides, validates.
fn load(cli: &Cli) -> Result<Config, String> {
    let path = cli
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    let mut config = if cli.config.is_some() || path.exists() {
        Config::from_file(&path).map_err(|e| match e {
            evalgate::config::ConfigError::Parse { .. } => format!("{}: {e}", path.display()),
            other => other.to_string(),
        })?
    } else {
        Config::default()
    };
    if let Some(listen) = &cli.listen {
        config.server.listen = listen.clone();
    }
    if let Some(upstream) = &cli.upstream {
        config.upstream.url = upstream.clone();
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    config.resolve_paths(dir);
    config.validate().map_err(|e| e.to_string())
}

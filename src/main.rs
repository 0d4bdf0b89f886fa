//! The `evalgate` binary: flags, logging, config, bind, run.
//!
//! Run with `cargo run --release -- --config config.toml`; `evalgate snapshot …` pulls a
//! deployment's flags into a file instead ([`evalgate::snapshot`]).

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use evalgate::logging::{self, LogFormat};
use evalgate::server::{CertStore, Listeners, TlsListener};
use evalgate::{AdminServer, Config, Gateway};
use futures_util::FutureExt;

/// jemalloc unless built without it (Cargo.toml, `[features]`): it returns freed memory
/// to the system steadily, so RSS under constant eviction stays near what the cache
/// weighs (README, "Memory").
#[cfg(feature = "jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit status for a bad configuration (`EX_USAGE`).
const EX_CONFIG: u8 = 64;
/// Exit status of `--check --connect` when Redis cannot be reached (`EX_UNAVAILABLE`).
const EX_UNAVAILABLE: u8 = 69;
/// The config file read when `--config` is not given; built-in defaults when absent.
const DEFAULT_CONFIG: &str = "config.toml";

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A caching gateway for Amplitude Experiment remote evaluation",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// A tool instead of the gateway; without one, `evalgate [--config …]` serves.
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file [default: ./config.toml, or built-in defaults when there is none].
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Listen address, overriding `server.listen`.
    #[arg(long, env = "EVALGATE_LISTEN")]
    listen: Option<String>,
    /// Upstream base URL, overriding `upstream.url`.
    #[arg(long, env = "EVALGATE_UPSTREAM")]
    upstream: Option<String>,
    /// Admin listen address, overriding `admin.listen` ("" disables the admin listener).
    #[arg(long, env = "EVALGATE_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// Validate the config, print the effective settings and exit.
    #[arg(long)]
    check: bool,
    /// With `--check`: also connect to the shared cache's Redis; exit 69 when it cannot
    /// be reached.
    #[arg(long, requires = "check")]
    connect: bool,
    /// Log line format.
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pull a deployment's flag configurations from Amplitude into a file the embedded
    /// engine serves (`upstream.url = "embedded"`).
    ///
    /// Asks GET {base}/sdk/v2/flags?v=0&eval_mode=remote, which returns every flag of the
    /// deployment (remote and local evaluation); --local-only drops eval_mode, which most
    /// likely returns only the local-evaluation flags. The answer is checked by the engine, then written
    /// atomically; flags whose targeting needs Amplitude (cohorts, location from the IP,
    /// the Amplitude ID) are named on stderr. On any failure: one line on stderr, exit
    /// status 1 (64 for bad options), and an existing output file is left untouched.
    Snapshot(SnapshotArgs),
    /// Write request files for load tools (vegeta, oha, wrk, k6) from a flags file.
    Workload(evalgate::workload::WorkloadArgs),
}

#[derive(clap::Args, Debug)]
struct SnapshotArgs {
    /// The deployment key (server or client) whose flags to pull.
    #[arg(long)]
    deployment_key: String,
    /// Amplitude data center: us is https://flag.lab.amplitude.com, eu is
    /// https://flag.lab.eu.amplitude.com.
    #[arg(long, value_enum, default_value = "us", conflicts_with = "flags_url")]
    zone: evalgate::snapshot::Zone,
    /// A base URL used instead of the zone's (--zone): scheme://host[:port][/prefix]; the
    /// request goes to {URL}/sdk/v2/flags.
    #[arg(long, value_name = "URL")]
    flags_url: Option<String>,
    /// The file to write (relative to the current directory).
    #[arg(long, short, default_value = evalgate::snapshot::DEFAULT_OUTPUT)]
    output: PathBuf,
    /// Ask for local-evaluation flags only (no eval_mode=remote).
    #[arg(long)]
    local_only: bool,
    /// Give up when the whole exchange (connect, TLS, answer, body) takes longer.
    #[arg(long, default_value_t = evalgate::snapshot::DEFAULT_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    timeout_ms: u64,
    /// Refuse an answer larger than this (decoded), in bytes.
    #[arg(long, default_value_t = evalgate::snapshot::DEFAULT_MAX_BYTES,
          value_parser = clap::value_parser!(u64).range(1..=4 * 1024 * 1024 * 1024))]
    max_bytes: u64,
}

fn main() -> ExitCode {
    #[cfg(feature = "jemalloc")]
    evalgate::memory::set_jemalloc_is_global();
    let mut cli = Cli::parse();
    match cli.command.take() {
        Some(Command::Snapshot(args)) => return snapshot(args),
        Some(Command::Workload(args)) => return workload(&args),
        None => {}
    }
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
    // The HTTPS listener's certificate and key, read and matched before any socket opens.
    let certs = if config.tls.enabled() {
        match CertStore::load(&config.tls) {
            Ok(certs) => Some(certs),
            Err(e) => {
                eprintln!("evalgate: config error: {e}");
                return ExitCode::from(EX_CONFIG);
            }
        }
    } else {
        None
    };
    if cli.check {
        if cli.connect
            && let Err(line) = reach_shared_cache(&gateway)
        {
            eprintln!("evalgate: {line}");
            return ExitCode::from(EX_UNAVAILABLE);
        }
        print!("{}", config.to_toml());
        return ExitCode::SUCCESS;
    }
    let log_level = logging::init(cli.log_format, &config.log.level);
    if config.shared_cache.enabled() && config.shared_cache.key_secret.is_empty() {
        tracing::warn!(
            "shared_cache.key_secret is empty: keys are unkeyed hashes: set shared_cache.key_secret"
        );
    }

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
        // SIGHUP re-reads the same file with the same flags, from now until serving ends.
        let reloads = evalgate::reload::on_sighup(
            gateway.clone(),
            Some(log_level),
            certs.clone(),
            move || load(&cli),
        );
        let mut listeners = Listeners::default();
        if !config.server.listen.is_empty() {
            let addr = config.listen_addr();
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => listeners.plain = Some(l),
                Err(e) => {
                    tracing::error!(%addr, error = %e, "cannot listen");
                    return ExitCode::FAILURE;
                }
            }
        }
        if let Some(certs) = certs {
            let addr = config.tls.listen_addr();
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => listeners.tls = Some(TlsListener::new(l, certs)),
                Err(e) => {
                    tracing::error!(tls = %addr, error = %e, "cannot listen");
                    return ExitCode::FAILURE;
                }
            }
        }
        let admin = if config.admin.listen.is_empty() {
            None
        } else {
            match tokio::net::TcpListener::bind(&config.admin.listen).await {
                Ok(l) => Some(AdminServer::new(l)),
                Err(e) => {
                    tracing::error!(admin = %config.admin.listen, error = %e, "cannot listen");
                    return ExitCode::FAILURE;
                }
            }
        };
        let admin_addr = admin
            .as_ref()
            .and_then(|a| a.local_addr().ok())
            .map_or_else(|| "off".to_string(), |a| a.to_string());
        let shown = |addr: Option<std::io::Result<std::net::SocketAddr>>| match addr {
            Some(Ok(addr)) => addr.to_string(),
            Some(Err(_)) => "?".to_string(),
            None => "off".to_string(),
        };
        if let Some(tls) = &listeners.tls {
            tracing::info!(
                tls = %shown(Some(tls.local_addr())),
                cert_file = %tls.store().cert_file().display(),
                serial = %tls.store().serial(),
                "HTTPS listener: TLS 1.2 and 1.3, ALPN h2 and http/1.1"
            );
        }
        tracing::info!(
            listen = %shown(listeners.plain.as_ref().map(|l| l.local_addr())),
            tls = %shown(listeners.tls.as_ref().map(TlsListener::local_addr)),
            admin = %admin_addr,
            upstream = %config.upstream.url,
            tracking = config.upstream.tracking.as_str(),
            budget = %budget_line(&config.upstream),
            cache_max_bytes = config.cache.max_bytes,
            cache_ttl_s = config.cache.ttl_s,
            "evalgate {} started",
            env!("CARGO_PKG_VERSION")
        );
        let simulation = &config.simulation;
        if simulation.enabled() {
            tracing::warn!(
                applies_to = simulation.applies_to.as_str(),
                latency_p50_ms = simulation.latency_p50_ms,
                latency_p99_ms = simulation.latency_p99_ms,
                latency_max_ms = simulation.latency_max_ms,
                rate_429 = simulation.rate_429,
                rate_5xx = simulation.rate_5xx,
                rate_timeout = simulation.rate_timeout,
                rate_reset = simulation.rate_reset,
                seed = simulation.seed,
                "simulation on: latency and errors are added on purpose ([simulation])"
            );
        }
        if config.upstream.tracking == evalgate::config::Tracking::Never {
            tracing::info!(
                "upstream.tracking = \"never\": every upstream request carries X-Amp-Exp-Track: no-track and X-Amp-Exp-Exposure-Track: no-track"
            );
        }
        tokio::select! {
            () = evalgate::serve_listeners(listeners, admin, gateway, shutdown) => {}
            () = reloads => {}
        }
        ExitCode::SUCCESS
    })
}

/// `evalgate workload`: one summary line on success, one error line otherwise.
fn workload(args: &evalgate::workload::WorkloadArgs) -> ExitCode {
    match evalgate::workload::run(args) {
        Ok(summary) => {
            let to = args
                .output
                .as_ref()
                .map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
            eprintln!("evalgate workload: {summary} to {to}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("evalgate workload: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// `evalgate snapshot`: the summary on stdout, warnings and the one error line on stderr.
fn snapshot(args: SnapshotArgs) -> ExitCode {
    let args_local_only = args.local_only;
    let options = evalgate::snapshot::Options {
        deployment_key: args.deployment_key,
        zone: args.zone,
        flags_url: args.flags_url,
        local_only: args.local_only,
        output: args.output,
        timeout: std::time::Duration::from_millis(args.timeout_ms),
        max_bytes: usize::try_from(args.max_bytes).unwrap_or(usize::MAX),
    };
    match evalgate::snapshot::run(&options) {
        Ok(report) => {
            if report.flags.is_empty() {
                eprintln!(
                    "evalgate snapshot: warning: the deployment has no flags{}: check the key, --zone and --local-only",
                    if args_local_only {
                        " (local-evaluation flags only)"
                    } else {
                        ""
                    }
                );
            }
            for warning in &report.warnings {
                eprintln!("evalgate snapshot: warning: {warning}");
            }
            print!("{}", report.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("evalgate snapshot: {e}");
            match e {
                evalgate::snapshot::SnapshotError::Usage(_) => ExitCode::from(EX_CONFIG),
                evalgate::snapshot::SnapshotError::Failed(_) => ExitCode::FAILURE,
            }
        }
    }
}

/// The upstream budget as the start-up line shows it: `off`, or its rate, burst and mode.
fn budget_line(upstream: &evalgate::config::UpstreamConfig) -> String {
    if upstream.budget_rps == 0.0 {
        return "off".into();
    }
    format!(
        "{}/s burst {} {}",
        upstream.budget_rps,
        upstream.budget_burst,
        upstream.budget_mode.as_str()
    )
}

/// `--check --connect`: one attempt to reach the shared cache's Redis (nothing to do
/// when the tier is off); `Err` is the one line saying which target failed and why.
fn reach_shared_cache(gateway: &Gateway) -> Result<(), String> {
    let Some(shared) = gateway.shared_cache() else {
        return Ok(());
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime
        .block_on(shared.check_connection())
        .map_err(|reason| {
            let target = gateway.config().shared_cache.display_target();
            // One line, whatever the client's error looks like.
            let reason = reason.split_whitespace().collect::<Vec<_>>().join(" ");
            format!("shared_cache: cannot reach {target}: {reason}")
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
    if let Some(admin) = &cli.admin_listen {
        config.admin.listen = admin.clone();
    }
    // A file in the working directory (no parent) needs nothing: relative paths already
    // resolve there, and the defaults stay as printed.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        config.resolve_paths(dir);
    }
    config.validate().map_err(|e| e.to_string())
}

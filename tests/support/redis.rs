//! Real `redis-server` processes for the shared cache tier's tests (issue 13), never a mock:
//! each test starts its own server on a free loopback port with its own temp dir. Every
//! process is stopped by PID when its handle drops, also when the test panics.
//!
//! The server is Debian's `redis-server` (package `redis-server`, the binary comes with
//! `redis-tools`, as does `redis-cli`); TLS certificates come from the `openssl` CLI. A missing
//! program fails the test with the package to install; nothing is skipped.

mod cluster;
mod inspect;
pub mod process;
mod tls;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[allow(unused_imports)] // each test file uses a part
pub use cluster::RedisCluster;
#[allow(unused_imports)]
pub use inspect::{Message, PubSubCollector, Stored, StoredKey};
use process::{TempDir, free_port, run_bounded, signal};

/// How long a server may take to answer its first command.
const START_TIMEOUT: Duration = Duration::from_secs(5);
/// The step between two polls while waiting for a server.
const POLL_STEP: Duration = Duration::from_millis(10);
/// Free ports tried before giving up (another process may take one between pick and bind).
const PORT_ATTEMPTS: usize = 5;
/// The longest one `redis-cli` run may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(10);
/// The server's log file and the file its stdout and stderr go to, in its dir.
const LOG_FILE: &str = "redis.log";
const OUT_FILE: &str = "stdout.log";
/// Connect, read and write timeout of the harness's own connections.
const CONN_TIMEOUT: Duration = Duration::from_secs(5);

/// One `redis-server` process on 127.0.0.1, killed (SIGKILL, by PID) on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// Arguments after the harness's own (`--port`, `--dir`, …).
    extra: Vec<String>,
    tls: Option<tls::TlsFiles>,
    /// Dropped after `Drop::drop` killed the process.
    dir: TempDir,
}

impl RedisServer {
    /// A plain-TCP server with the harness defaults (no persistence, `DEBUG` allowed).
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A plain-TCP server with `args` added after the defaults, e.g.
    /// `&["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]`.
    pub fn start_with(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Self::start_on_free_port(TempDir::new("redis"), None, || args.clone())
    }

    /// A TLS-only server (`rediss://`, plain port off) whose certificate, for 127.0.0.1 and
    /// localhost, is signed by a fresh test CA: trust [`ca_file`](Self::ca_file).
    pub fn start_tls() -> Self {
        Self::start_tls_with(&[])
    }

    /// [`start_tls`](Self::start_tls) with `args` added after the defaults.
    pub fn start_tls_with(args: &[&str]) -> Self {
        let dir = TempDir::new("redis-tls");
        let files = tls::generate(dir.path());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Self::start_on_free_port(dir, Some(files), || args.clone())
    }

    /// Starts on a free port; `extra_args` is asked again for each port tried (a cluster node
    /// needs a free bus port too).
    fn start_on_free_port(
        dir: TempDir,
        tls: Option<tls::TlsFiles>,
        extra_args: impl Fn() -> Vec<String>,
    ) -> Self {
        let mut server = Self {
            child: None,
            port: 0,
            extra: Vec::new(),
            tls,
            dir,
        };
        let mut taken = Vec::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            server.extra = extra_args();
            match server.launch() {
                Ok(()) => return server,
                Err(Launch::PortTaken(log)) => taken.push(format!("port {}: {log}", server.port)),
                Err(Launch::Failed(why)) => panic!("{why}"),
            }
        }
        panic!(
            "redis-server found no free port in {PORT_ATTEMPTS} attempts:\n{}",
            taken.join("\n")
        );
    }

    /// Spawns the server on `self.port` and waits until it answers `INFO` with its own PID.
    fn launch(&mut self) -> Result<(), Launch> {
        assert!(
            self.child.is_none(),
            "redis-server {} is already running",
            self.port
        );
        let dir = self.dir.path();
        // Both logs are appended to across restarts; only this launch's part decides.
        let marks = [LOG_FILE, OUT_FILE].map(|name| file_len(&dir.join(name)));
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(OUT_FILE))
            .expect("open stdout.log");
        let err = out.try_clone().expect("clone stdout.log");
        let mut command = Command::new("redis-server");
        command
            .args(self.server_args())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not on PATH: the shared cache tests need a real Redis; \
                 install the Debian package redis-server (`apt-get install redis-server`)"
            ),
            Err(e) => panic!("spawn redis-server: {e}"),
        };
        // Ready when the server on the port is this child: another test's server may have
        // taken the port, and answers while this child is still failing to bind.
        let this_child = format!("process_id:{}", child.id());
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().expect("wait for redis-server") {
                let this_launch = [LOG_FILE, OUT_FILE]
                    .iter()
                    .zip(marks)
                    .map(|(name, mark)| read_from(&dir.join(name), mark))
                    .collect::<String>();
                return Err(if this_launch.contains("Address already in use") {
                    Launch::PortTaken(this_launch)
                } else {
                    Launch::Failed(format!(
                        "redis-server on port {} exited at start with {status}:\n{}",
                        self.port,
                        self.log()
                    ))
                });
            }
            let info = self.cli(&["INFO", "server"], POLL_STEP * 50);
            if info.is_ok_and(|out| out.lines().any(|line| line.trim() == this_child)) {
                self.child = Some(child);
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Launch::Failed(format!(
                    "redis-server on port {} did not answer within {START_TIMEOUT:?}:\n{}",
                    self.port,
                    self.log()
                )));
            }
            std::thread::sleep(POLL_STEP);
        }
    }

    fn server_args(&self) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        let mut args: Vec<String> = Vec::new();
        let mut push = |pairs: &[&str]| args.extend(pairs.iter().map(|s| s.to_string()));
        match &self.tls {
            None => push(&["--port", &self.port.to_string()]),
            Some(files) => push(&[
                "--port",
                "0",
                "--tls-port",
                &self.port.to_string(),
                "--tls-cert-file",
                &files.cert.display().to_string(),
                "--tls-key-file",
                &files.key.display().to_string(),
                "--tls-ca-cert-file",
                &files.ca.display().to_string(),
                "--tls-auth-clients",
                "no",
            ]),
        }
        push(&["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        push(&["--daemonize", "no", "--dir", &dir, "--loglevel", "warning"]);
        push(&["--logfile", &format!("{dir}/{LOG_FILE}")]);
        push(&["--enable-debug-command", "local"]);
        args.extend(self.extra.iter().cloned());
        args
    }

    /// `redis://127.0.0.1:P`, or `rediss://127.0.0.1:P` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The port the server listens on (the TLS port for a TLS server).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The running process's id; panics after [`kill`](Self::kill).
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("redis-server is not running")
            .id()
    }

    /// The server's working directory (logs, `nodes.conf`, TLS files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The test CA's certificate (PEM) that signed a TLS server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.tls
            .as_ref()
            .expect("ca_file: not a TLS server (use start_tls)")
            .ca
            .clone()
    }

    /// What the server logged so far (its log file, then its stdout/stderr).
    pub fn log(&self) -> String {
        let log = read_from(&self.dir.path().join(LOG_FILE), 0);
        let out = read_from(&self.dir.path().join(OUT_FILE), 0);
        format!("--- redis.log ---\n{log}--- stdout/stderr ---\n{out}")
    }

    /// SIGKILL and reap the process, as a crash would; the data is gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server keeps its connections but answers nothing until [`cont`](Self::cont).
    pub fn stop(&self) {
        signal("-STOP", self.pid());
    }

    /// SIGCONT after [`stop`](Self::stop).
    pub fn cont(&self) {
        signal("-CONT", self.pid());
    }

    /// Kills the server (if running) and starts it again, empty, on the same port with the
    /// same arguments.
    pub fn restart(&mut self) {
        self.kill();
        for leftover in ["dump.rdb", "appendonlydir"] {
            let path = self.dir.path().join(leftover);
            let _ = std::fs::remove_file(&path).or_else(|_| std::fs::remove_dir_all(&path));
        }
        let mut why = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match self.launch() {
                Ok(()) => return,
                Err(Launch::PortTaken(log)) => why = log,
                Err(Launch::Failed(log)) => panic!("restart: {log}"),
            }
        }
        panic!("restart: port {} stayed taken:\n{why}", self.port);
    }

    /// Runs `redis-cli` with `args` against this server (`--raw` output, trimmed) and
    /// panics on an error reply, a failed connection or after 10 s.
    pub fn cmd(&self, args: &[&str]) -> String {
        self.try_cmd(args)
            .unwrap_or_else(|e| panic!("redis-cli {args:?}: {e}"))
    }

    /// [`cmd`](Self::cmd), returning what went wrong instead of panicking.
    pub fn try_cmd(&self, args: &[&str]) -> Result<String, String> {
        self.cli(args, CLI_TIMEOUT)
            .map(|out| out.trim_end().to_string())
    }

    fn cli(&self, args: &[&str], timeout: Duration) -> Result<String, String> {
        let mut command = Command::new("redis-cli");
        command.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "--no-auth-warning",
        ]);
        if let Some(files) = &self.tls {
            command.arg("--tls").arg("--cacert").arg(&files.ca);
        }
        command.arg("--raw").args(args);
        let out = run_bounded(&mut command, timeout, "redis-tools")?;
        // redis-cli exits 0 on error replies; `--raw` prints them as `ERR …` (or `(error) …`).
        let text = String::from_utf8_lossy(&out).into_owned();
        let first = text.lines().next().unwrap_or("");
        let error_reply = [
            "ERR ",
            "WRONGTYPE ",
            "NOAUTH ",
            "OOM ",
            "LOADING ",
            "(error) ",
        ]
        .iter()
        .any(|prefix| first.starts_with(prefix));
        if error_reply { Err(text) } else { Ok(text) }
    }

    /// A `redis` crate client for this server (trusting the test CA for a TLS server).
    pub fn client(&self) -> ::redis::Client {
        match &self.tls {
            None => ::redis::Client::open(self.url()),
            Some(files) => ::redis::Client::build_with_tls(
                self.url(),
                ::redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(std::fs::read(&files.ca).expect("read the test CA")),
                },
            ),
        }
        .expect("redis client")
    }

    /// A blocking connection with 5 s connect/read/write timeouts.
    pub fn connection(&self) -> ::redis::Connection {
        inspect::connect(&self.client(), CONN_TIMEOUT)
    }

    /// Every key with its value (strings and hashes; other types by name) and PTTL.
    pub fn keys(&self) -> BTreeMap<String, StoredKey> {
        inspect::dump_keys(&mut self.connection())
    }

    /// Starts recording every pub/sub message on every channel (`PSUBSCRIBE *`); it is
    /// subscribed when this returns.
    pub fn collector(&self) -> PubSubCollector {
        PubSubCollector::start(self.client())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The text of `path` from byte `from` on (empty if there is none).
fn read_from(path: &Path, from: u64) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

enum Launch {
    /// Another process bound the port first; try another.
    PortTaken(String),
    Failed(String),
}

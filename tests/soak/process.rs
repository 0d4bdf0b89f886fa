//! The real `evalgate` binary under soak: started on 127.0.0.1:0 (public and admin) with a
//! config file in a private directory, JSON logs read from its stderr, signalled by PID.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// Bound on start-up and on the exit after SIGTERM: proves "does not hang".
const NO_HANG: Duration = Duration::from_secs(20);
/// Log lines kept for the failure report.
const TAIL_LINES: usize = 40;

/// What the soak learns from the logs.
#[derive(Default)]
pub struct Logs {
    pub lines: u64,
    /// Lines that mention a panic.
    pub panics: Vec<String>,
    pub reloads: u64,
    pub warnings: u64,
    pub errors: u64,
    pub tail: VecDeque<String>,
}

pub struct Process {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub logs: Arc<Mutex<Logs>>,
    dir: PathBuf,
}

impl Process {
    /// Starts the binary with `config` as its config file.
    pub async fn start(config: &str) -> Process {
        let dir = std::env::temp_dir().join(format!("evalgate-soak-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_evalgate"))
            .arg("--config")
            .arg(dir.join("config.toml"))
            .args(["--log-format", "json"])
            .env_remove("RUST_LOG")
            .env_remove("EVALGATE_LISTEN")
            .env_remove("EVALGATE_UPSTREAM")
            .env_remove("EVALGATE_ADMIN_LISTEN")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the evalgate binary");
        let logs = Arc::new(Mutex::new(Logs::default()));
        let (started_tx, mut started) = mpsc::unbounded_channel();
        let stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let json: serde_json::Value =
                    serde_json::from_str(&line).unwrap_or(serde_json::Value::Null);
                if let (Some(listen), Some(admin)) =
                    (json["listen"].as_str(), json["admin"].as_str())
                {
                    let _ = started_tx.send((listen.to_string(), admin.to_string()));
                }
                let mut logs = sink.lock().unwrap();
                logs.lines += 1;
                if line.contains("panicked") {
                    logs.panics.push(line.clone());
                }
                let message = json["message"].as_str().unwrap_or("");
                if message.contains("config reloaded") {
                    logs.reloads += 1;
                }
                match json["level"].as_str() {
                    Some("WARN") => logs.warnings += 1,
                    Some("ERROR") => logs.errors += 1,
                    _ => {}
                }
                if logs.tail.len() == TAIL_LINES {
                    logs.tail.pop_front();
                }
                logs.tail.push_back(line);
            }
        });
        let (listen, admin) = timeout(NO_HANG, started.recv())
            .await
            .expect("evalgate starts")
            .unwrap_or_else(|| panic!("evalgate exited at start: {:?}", logs.lock().unwrap().tail));
        Process {
            child,
            addr: listen.parse().unwrap(),
            admin: admin.parse().unwrap(),
            logs,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("evalgate is running")
    }

    /// Replaces the config file (for the next SIGHUP).
    pub fn write_config(&self, config: &str) {
        std::fs::write(self.dir.join("config.toml"), config).unwrap();
    }

    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("run `kill` (Debian package procps: `apt-get install procps`)");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Resident set size, from /proc/<pid>/status.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// SIGTERM, then the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        timeout(NO_HANG, self.child.wait())
            .await
            .expect("evalgate exits after SIGTERM")
            .unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // Only still running if the soak failed; killed by its handle.
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

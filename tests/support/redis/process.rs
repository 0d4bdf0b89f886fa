//! Process plumbing for the Redis harness: temp dirs, free ports, bounded child runs, signals.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A fresh directory under the system temp dir, removed (with its contents) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// `<tmp>/evalgate-<what>-<pid>-<n>-<nanos>`: unique across parallel tests and processes.
    pub fn new(what: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        for _ in 0..10 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let name = format!("evalgate-{what}-{}-{n}-{nanos}", std::process::id());
            let path = std::env::temp_dir().join(name);
            match std::fs::create_dir(&path) {
                Ok(()) => return Self(path),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("create {}: {e}", path.display()),
            }
        }
        panic!("no fresh temp dir for {what} in 10 attempts");
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port that was free a moment ago (bind 127.0.0.1:0, read it, drop the listener).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Runs `command` to completion within `timeout` and returns its stdout. A non-zero exit, a
/// timeout (the child is then killed by PID) or a failed spawn is an `Err` with its output;
/// a program missing from PATH panics naming the Debian `package` that ships it.
pub fn run_bounded(
    command: &mut Command,
    timeout: Duration,
    package: &str,
) -> Result<Vec<u8>, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!(
                "{program} is not on PATH: install the Debian package {package} (`apt-get install {package}`)"
            )
        }
        Err(e) => return Err(format!("spawn {program}: {e}")),
    };
    // Drain both pipes while waiting, so a long output cannot block the child.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| format!("wait for {program}: {e}"))?
        {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let output = || {
        format!(
            "stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        )
    };
    match status {
        Some(status) if status.success() => Ok(stdout),
        Some(status) => Err(format!("{program} exited with {status}\n{}", output())),
        None => Err(format!(
            "{program} did not finish within {timeout:?}\n{}",
            output()
        )),
    }
}

/// Sends `signal` (`-STOP`, `-CONT`, …) to `pid` with the `kill` program, as tests/shutdown.rs does.
pub fn signal(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("run `kill` (Debian package procps: `apt-get install procps`)");
    assert!(status.success(), "kill {signal} {pid} failed");
}

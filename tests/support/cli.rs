//! Running the built `evalgate` binary: a temporary working directory with a config file,
//! and a run that must exit by itself (`tests/cli.rs`, `tests/cli_shared_cache.rs`).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// `EX_USAGE`: a bad configuration.
pub const EX_CONFIG: i32 = 64;

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("evalgate-cli-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// Writes `config.toml` here and returns its path.
    pub fn config(&self, text: &str) -> PathBuf {
        let path = self.0.join("config.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Generous bound on a run that should exit by itself: proves "does not hang".
pub const NO_HANG: Duration = Duration::from_secs(10);

/// Runs the binary in `dir` with `args` and only the given `EVALGATE_*` variables; it must
/// exit by itself within [`NO_HANG`], else it is killed through its handle and the test fails.
pub fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_within(dir, args, env, NO_HANG)
}

/// [`run`] with its own bound on how long the binary may take to exit.
pub fn run_within(dir: &Path, args: &[&str], env: &[(&str, &str)], bound: Duration) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_evalgate"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("EVALGATE_LISTEN")
        .env_remove("EVALGATE_UPSTREAM")
        .env_remove("EVALGATE_ADMIN_LISTEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let child = cmd.spawn().expect("run the evalgate binary");
        // On timeout the child is dropped, and `kill_on_drop` kills it.
        tokio::time::timeout(bound, child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("evalgate {args:?} did not exit"))
            .unwrap()
    })
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

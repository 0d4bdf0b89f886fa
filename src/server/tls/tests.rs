//! The certificate store's reload, on pairs made by the `openssl` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::cert_store::read_files;
use super::*;
use crate::config::TlsConfig;

/// A self-signed P-256 certificate and its key, as files in `dir` named after `name`.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
        ])
        .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl CLI runs");
    assert!(status.status.success(), "{status:?}");
    (cert, key)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("evalgate-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A key read while the files were being swapped (the new certificate, the old key) is
/// read once more before the pair counts as bad: the second read sees the new pair whole.
#[test]
fn a_mismatch_is_read_again_once() {
    let dir = temp_dir("mismatch");
    let (old_cert, old_key) = self_signed(&dir, "old");
    let (new_cert, new_key) = self_signed(&dir, "new");
    let store = CertStore::load(&TlsConfig {
        listen: "127.0.0.1:0".into(),
        cert_file: old_cert.display().to_string(),
        key_file: old_key.display().to_string(),
        reload_interval_ms: 1000,
    })
    .unwrap();
    let metrics = TlsMetrics::default();
    let before = store.serial();
    // First read: the swap fell between the files; second: the new pair.
    let reads = [(&new_cert, &old_key), (&new_cert, &new_key)];
    let mut n = 0;
    store.reload_with(&metrics, false, || {
        let (cert, key) = reads[n.min(1)];
        n += 1;
        read_files(cert, key)
    });
    assert_eq!(n, 2, "read twice");
    assert_eq!(metrics.reloads(), [1, 0]);
    assert_ne!(store.serial(), before, "the new pair serves");
    // A real mismatch, read twice the same, is an error; the new pair keeps serving.
    let after = store.serial();
    let mut n = 0;
    store.reload_with(&metrics, false, || {
        n += 1;
        read_files(&old_cert, &new_key)
    });
    assert_eq!(n, 2);
    assert_eq!(metrics.reloads(), [1, 1]);
    assert_eq!(store.serial(), after);
    let _ = std::fs::remove_dir_all(&dir);
}

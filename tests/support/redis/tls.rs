//! A test CA and a server certificate for 127.0.0.1/localhost, made with the `openssl` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::process::run_bounded;

/// The PEM files a TLS server uses; all inside the server's temp dir.
pub struct TlsFiles {
    /// The test CA's certificate: what a client trusts.
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Writes a fresh CA and a server certificate (SAN IP:127.0.0.1, DNS:localhost) into `dir`.
/// P-256 keys: quick to generate on a busy 2-core machine.
pub fn generate(dir: &Path) -> TlsFiles {
    let files = TlsFiles {
        ca: dir.join("ca.crt"),
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    let ca_key = dir.join("ca.key");
    let csr = dir.join("server.csr");
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
         basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n",
    )
    .expect("write server.ext");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=evalgate test CA",
            ])
            .args(ec)
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&files.ca),
    );
    openssl(
        Command::new("openssl")
            .args(["req", "-new", "-subj", "/CN=localhost"])
            .args(ec)
            .arg("-keyout")
            .arg(&files.key)
            .arg("-out")
            .arg(&csr),
    );
    openssl(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-set_serial", "1"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&files.ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&files.cert),
    );
    files
}

fn openssl(command: &mut Command) {
    if let Err(e) = run_bounded(command, Duration::from_secs(30), "openssl") {
        panic!("make test certificates: {e}");
    }
}

//! Test certificates from the `openssl` CLI: a test CA issuing server certificates by
//! serial number, with PKCS#8, SEC1 or RSA keys; and file replacement by rename.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// A test CA in a directory; it issues certificates for 127.0.0.1 and localhost.
pub struct TestCa {
    dir: PathBuf,
    pub cert: PathBuf,
    key: PathBuf,
}

/// The private key's PEM form.
#[derive(Clone, Copy, Debug)]
pub enum KeyFormat {
    /// `BEGIN PRIVATE KEY` (P-256).
    Pkcs8,
    /// `BEGIN EC PRIVATE KEY` (P-256).
    Sec1,
    /// `BEGIN RSA PRIVATE KEY` (2048 bits).
    Rsa,
}

/// A server certificate and its key, as files.
#[derive(Clone, Debug)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Issued {
    /// The certificate's DER, to compare with what a server presented.
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_file(&self.cert)
            .expect("a PEM certificate")
            .to_vec()
    }
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        let ca = TestCa {
            dir: dir.to_path_buf(),
            cert: dir.join("ca.crt"),
            key: dir.join("ca.key"),
        };
        openssl(&[
            "req",
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=evalgate test CA",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            path(&ca.key),
            "-out",
            path(&ca.cert),
        ]);
        ca
    }

    /// Issues a certificate with serial `serial` (files named after it) with a P-256 key.
    pub fn issue(&self, serial: u32) -> Issued {
        self.issue_with(serial, KeyFormat::Pkcs8)
    }

    pub fn issue_with(&self, serial: u32, format: KeyFormat) -> Issued {
        let issued = Issued {
            cert: self.dir.join(format!("server-{serial}.crt")),
            key: self.dir.join(format!("server-{serial}.key")),
        };
        let csr = self.dir.join(format!("server-{serial}.csr"));
        let ext = self.dir.join("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
             basicConstraints = critical, CA:FALSE\n\
             extendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        let newkey: &[&str] = match format {
            KeyFormat::Rsa => &["-newkey", "rsa:2048"],
            _ => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        };
        let mut req = vec!["req", "-new", "-nodes", "-subj", "/CN=localhost"];
        req.extend(newkey);
        req.extend(["-keyout", path(&issued.key), "-out", path(&csr)]);
        openssl(&req);
        let serial = serial.to_string();
        openssl(&[
            "x509",
            "-req",
            "-days",
            "2",
            "-set_serial",
            &serial,
            "-in",
            path(&csr),
            "-CA",
            path(&self.cert),
            "-CAkey",
            path(&self.key),
            "-extfile",
            path(&ext),
            "-out",
            path(&issued.cert),
        ]);
        // `openssl req` writes PKCS#8; `ec` rewrites it as SEC1, `rsa -traditional` as PKCS#1.
        let rewrite: &[&str] = match format {
            KeyFormat::Pkcs8 => &[],
            KeyFormat::Sec1 => &["ec"],
            KeyFormat::Rsa => &["rsa", "-traditional"],
        };
        if !rewrite.is_empty() {
            let rewritten = issued.key.with_extension("rewritten");
            let mut args = rewrite.to_vec();
            args.extend(["-in", path(&issued.key), "-out", path(&rewritten)]);
            openssl(&args);
            std::fs::rename(&rewritten, &issued.key).unwrap();
        }
        let pem = std::fs::read_to_string(&issued.key).unwrap();
        let label = match format {
            KeyFormat::Pkcs8 => "-----BEGIN PRIVATE KEY-----",
            KeyFormat::Sec1 => "-----BEGIN EC PRIVATE KEY-----",
            KeyFormat::Rsa => "-----BEGIN RSA PRIVATE KEY-----",
        };
        assert!(pem.starts_with(label), "{format:?} key: {pem:.40}");
        issued
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run `openssl` (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Replaces `to` with `from`'s contents the way editors and cert-manager do: a new file
/// renamed over the old one.
pub fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

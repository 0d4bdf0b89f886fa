//! The certificate store: the pair in force, re-read from `tls.cert_file` and
//! `tls.key_file` when they change or on SIGHUP.
//!
//! The store holds the pair in force as an `Arc<CertifiedKey>` behind a std `RwLock`; each
//! handshake clones the `Arc` (a read lock held for that clone only), and a reload swaps
//! it. Open connections keep the session they negotiated: a reload changes only what new
//! handshakes are offered.
//!
//! Change detection reads both files and compares a SHA-256 digest of their contents
//! with the last pair it tried; only a changed digest (or SIGHUP) parses them. A file
//! replaced by a rename (editors, cert-manager's symlink swap) is seen like one rewritten
//! in place, and a mtime that does not move is no blind spot. A pair that does not load (a
//! certificate written before its key, a half-written file) is logged once and retried
//! when either file changes again; the pair in force keeps serving meanwhile. A key that
//! does not match its certificate is re-read once first: Kubernetes' `..data` swap can
//! fall between the reads of the two files.
//!
//! Each file is read only when it is a regular file of at most [`MAX_PEM_BYTES`] (checked
//! on its metadata, and the read itself is bounded), so a path pointing at a FIFO, a device
//! or a huge file can neither hang a reload nor exhaust memory.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use ring::digest::{Context, SHA256};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::der::serial_hex;
use crate::config::{ConfigError, TlsConfig};
use crate::metrics::tls::TlsMetrics;

/// The largest certificate or key file read (1 MiB): a PEM chain is a few KiB.
pub const MAX_PEM_BYTES: u64 = 1 << 20;

/// The certificate chain and key in force, and where they are read from. Cheap to clone
/// (one `Arc`).
#[derive(Clone)]
pub struct CertStore(Arc<Inner>);

struct Inner {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// What the last poll or reload read, so a pair is tried once per change. Locked for a
    /// whole reload (read, compare, swap): a poll and a SIGHUP never interleave, so an
    /// older read can never replace a newer pair.
    last_read: Mutex<Seen>,
}

/// The outcome of reading both files, compared between polls.
#[derive(Clone, PartialEq, Eq)]
enum Seen {
    Contents([u8; 32]),
    Unreadable(String),
}

/// Both files' contents and their digest.
pub(super) struct Files {
    digest: [u8; 32],
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Why a pair did not load: the key that names the file at fault, and why.
#[derive(Debug, Clone)]
pub struct PairError {
    pub key: &'static str,
    pub file: PathBuf,
    pub problem: String,
}

impl fmt::Display for PairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.problem)
    }
}

impl From<PairError> for ConfigError {
    fn from(e: PairError) -> ConfigError {
        ConfigError::Invalid {
            key: e.key,
            problem: format!("{}: {}", e.file.display(), e.problem),
        }
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_file", &self.0.cert_file)
            .field("key_file", &self.0.key_file)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Reads the pair named by `[tls]`; a missing, unreadable or mismatched file is a
    /// config error naming `tls.cert_file` or `tls.key_file`.
    pub fn load(config: &TlsConfig) -> Result<CertStore, ConfigError> {
        let cert_file = PathBuf::from(&config.cert_file);
        let key_file = PathBuf::from(&config.key_file);
        let files = read_files(&cert_file, &key_file)?;
        let pair = parse_files(&cert_file, &key_file, &files).map_err(|(e, _)| e)?;
        Ok(CertStore(Arc::new(Inner {
            cert_file,
            key_file,
            current: RwLock::new(pair),
            last_read: Mutex::new(Seen::Contents(files.digest)),
        })))
    }

    /// The pair in force.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The serial number of the certificate in force, in hex (for logs).
    pub fn serial(&self) -> String {
        serial_hex(&self.current()).unwrap_or_else(|| "?".into())
    }

    pub fn cert_file(&self) -> &Path {
        &self.0.cert_file
    }

    /// Re-reads both files and loads them when their contents differ from the last read
    /// (the `tls.reload_interval_ms` poll). Blocking file reads: run it off the runtime.
    pub fn poll(&self, metrics: &TlsMetrics) {
        self.reload(metrics, false);
    }

    /// Re-reads and loads both files whatever they hold (SIGHUP). Blocking file reads: run
    /// it off the runtime.
    pub fn reload_now(&self, metrics: &TlsMetrics) {
        self.reload(metrics, true);
    }

    fn reload(&self, metrics: &TlsMetrics, force: bool) {
        let (cert_file, key_file) = (&self.0.cert_file, &self.0.key_file);
        self.reload_with(metrics, force, || read_files(cert_file, key_file));
    }

    /// [`CertStore::reload`] with the files read by `read`.
    pub(super) fn reload_with(
        &self,
        metrics: &TlsMetrics,
        force: bool,
        mut read: impl FnMut() -> Result<Files, PairError>,
    ) {
        let inner = &self.0;
        let mut last = inner.last_read.lock().unwrap_or_else(|e| e.into_inner());
        let mut files = read();
        let mut seen = Seen::of(&files);
        if !force && *last == seen {
            return;
        }
        let parse = |files: &Result<Files, PairError>| match files {
            Ok(files) => parse_files(&inner.cert_file, &inner.key_file, files),
            Err(e) => Err((e.clone(), false)),
        };
        let mut outcome = parse(&files);
        if matches!(outcome, Err((_, true))) {
            // The key does not match: the files may have been swapped between the two
            // reads (Kubernetes' `..data` symlink). Once more, before calling it an error.
            files = read();
            seen = Seen::of(&files);
            outcome = parse(&files);
        }
        *last = seen;
        match outcome {
            Ok(pair) => {
                let serial = serial_hex(&pair).unwrap_or_else(|| "?".into());
                *inner.current.write().unwrap_or_else(|e| e.into_inner()) = pair;
                metrics.reload(true);
                tracing::info!(
                    cert_file = %inner.cert_file.display(),
                    serial = %serial,
                    "TLS certificate reloaded: new handshakes use serial {serial}"
                );
            }
            Err((e, _)) => {
                metrics.reload(false);
                tracing::warn!(
                    key = e.key,
                    file = %e.file.display(),
                    reason = %e.problem,
                    "TLS certificate not reloaded; the previous one keeps serving"
                );
            }
        }
    }
}

impl Seen {
    fn of(files: &Result<Files, PairError>) -> Seen {
        match files {
            Ok(files) => Seen::Contents(files.digest),
            Err(e) => Seen::Unreadable(e.to_string()),
        }
    }
}

/// Both files, read within [`MAX_PEM_BYTES`] each, and the digest of their contents.
pub(super) fn read_files(cert_file: &Path, key_file: &Path) -> Result<Files, PairError> {
    let fail = |key: &'static str, file: &Path, problem: String| PairError {
        key,
        file: file.to_path_buf(),
        problem,
    };
    let cert = read_capped(cert_file).map_err(|p| fail("tls.cert_file", cert_file, p))?;
    let key = read_capped(key_file).map_err(|p| fail("tls.key_file", key_file, p))?;
    let mut digest = Context::new(&SHA256);
    digest.update(&(cert.len() as u64).to_le_bytes());
    digest.update(&cert);
    digest.update(&key);
    let digest: [u8; 32] = digest
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes");
    Ok(Files { digest, cert, key })
}

/// A regular file of at most [`MAX_PEM_BYTES`]; anything else is refused before it is
/// opened (a FIFO would block the open), and the read stops past the cap whatever the
/// file turned into meanwhile.
fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    let cannot = |e: std::io::Error| format!("cannot read ({e})");
    let fits = |meta: &Metadata| {
        if !meta.is_file() {
            Err("cannot read (not a regular file)".to_string())
        } else if meta.len() > MAX_PEM_BYTES {
            Err(format!(
                "larger than {MAX_PEM_BYTES} bytes ({} bytes): not a PEM file",
                meta.len()
            ))
        } else {
            Ok(())
        }
    };
    fits(&std::fs::metadata(path).map_err(cannot)?)?;
    let file = File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    fits(&meta)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot)?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!("larger than {MAX_PEM_BYTES} bytes: not a PEM file"));
    }
    Ok(bytes)
}

/// The pair `files` make, or the error naming the file at fault and whether it is a key
/// that does not match the certificate.
fn parse_files(
    cert_file: &Path,
    key_file: &Path,
    files: &Files,
) -> Result<Arc<CertifiedKey>, (PairError, bool)> {
    parse_pair(&files.cert, &files.key).map_err(|(key, problem, mismatch)| {
        let file = if key == "tls.cert_file" {
            cert_file
        } else {
            key_file
        };
        let error = PairError {
            key,
            file: file.to_path_buf(),
            problem,
        };
        (error, mismatch)
    })
}

/// The chain and key from their PEM texts, checked to belong together; on error, the key
/// naming the file at fault, why, and whether the key does not match the certificate.
fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<CertifiedKey>, (&'static str, String, bool)> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            (
                "tls.cert_file",
                format!("not PEM certificates ({e})"),
                false,
            )
        })?;
    if chain.is_empty() {
        return Err(("tls.cert_file", "holds no PEM certificate".into(), false));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        (
            "tls.key_file",
            format!("holds no PEM private key (PKCS#8, RSA or SEC1): {e}"),
            false,
        )
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| {
        (
            "tls.key_file",
            format!("unsupported private key ({e})"),
            false,
        )
    })?;
    let pair = CertifiedKey::new(chain, signer);
    match pair.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(pair))
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err((
            "tls.key_file",
            "does not match the certificate in tls.cert_file (the chain's first certificate)"
                .into(),
            true,
        )),
        Err(e) => Err((
            "tls.cert_file",
            format!("not a usable certificate ({e})"),
            false,
        )),
    }
}

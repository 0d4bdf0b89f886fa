//! The HTTPS listener: the rustls acceptor (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`),
//! its handshake bounded by `server.header_read_timeout_ms`, and the certificate store
//! that re-reads `tls.cert_file` and `tls.key_file` when they change or on SIGHUP.
//!
//! The store holds the pair in force as an `Arc<CertifiedKey>` behind a std `RwLock`; each
//! handshake clones the `Arc` (a read lock held for that clone only), and a reload swaps
//! it. Open connections keep the session they negotiated: a reload changes only what new
//! handshakes are offered.
//!
//! Change detection reads both files and compares a SHA-256 digest of their contents
//! with the last pair it tried, so a file replaced by a rename (editors, cert-manager's
//! symlink swap) is seen like one rewritten in place, and a mtime that does not move is
//! no blind spot. A pair that does not load (a certificate written before its key, a
//! half-written file) is logged once and retried when either file changes again; the
//! pair in force keeps serving meanwhile.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ring::digest::{Context, SHA256};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{ConfigError, TlsConfig};
use crate::metrics::tls::{Handshake, TlsMetrics};

/// The HTTPS listener: a bound socket and the certificate store its handshakes use.
pub struct TlsListener {
    pub(super) listener: TcpListener,
    pub(super) acceptor: TlsAcceptor,
    pub(super) store: CertStore,
}

impl TlsListener {
    /// Serves `store`'s pair on `listener`: TLS 1.2 and 1.3 (rustls with the ring
    /// provider), ALPN `h2` then `http/1.1`; a client that offers no ALPN speaks HTTP/1.1.
    pub fn new(listener: TcpListener, store: CertStore) -> TlsListener {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(store.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        TlsListener {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            store,
        }
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The certificate store (to reload it on SIGHUP).
    pub fn store(&self) -> &CertStore {
        &self.store
    }
}

/// Runs the TLS handshake on `stream` within `timeout` (`server.header_read_timeout_ms`:
/// a client that opens a connection and never finishes its handshake holds its slot no
/// longer than one that never finishes its request head) or until `stop` turns true.
pub(super) async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
    metrics: &TlsMetrics,
    mut stop: watch::Receiver<bool>,
) -> Option<TlsStream<TcpStream>> {
    let result = tokio::select! {
        result = tokio::time::timeout(timeout, acceptor.accept(stream)) => result,
        _ = stop.wait_for(|stop| *stop) => return None,
    };
    match result {
        Ok(Ok(stream)) => {
            metrics.handshake(Handshake::Ok);
            Some(stream)
        }
        Ok(Err(e)) => {
            metrics.handshake(Handshake::Error);
            tracing::debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics.handshake(Handshake::Timeout);
            tracing::debug!("TLS handshake not finished within server.header_read_timeout_ms");
            None
        }
    }
}

/// The certificate chain and key in force, and where they are read from. Cheap to clone
/// (one `Arc`).
#[derive(Clone)]
pub struct CertStore(Arc<Inner>);

struct Inner {
    cert_file: PathBuf,
    key_file: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// What the last poll or reload read, so a pair is tried once per change.
    last_read: Mutex<Read>,
}

/// The outcome of reading both files, compared between polls.
#[derive(Clone, PartialEq, Eq)]
enum Read {
    Contents([u8; 32]),
    Unreadable(String),
}

/// Why a pair did not load: the key that names the file at fault, and why.
#[derive(Debug)]
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
        let (digest, pair) = read_pair(&cert_file, &key_file)?;
        Ok(CertStore(Arc::new(Inner {
            cert_file,
            key_file,
            current: RwLock::new(pair?),
            last_read: Mutex::new(Read::Contents(digest)),
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

    pub fn cert_file(&self) -> &std::path::Path {
        &self.0.cert_file
    }

    /// Re-reads both files when their contents differ from the last read (the
    /// `tls.reload_interval_ms` poll). Blocking file reads: run it off the runtime.
    pub fn poll(&self, metrics: &TlsMetrics) {
        self.reload(metrics, false);
    }

    /// Re-reads both files whatever they hold (SIGHUP). Blocking file reads.
    pub fn reload_now(&self, metrics: &TlsMetrics) {
        self.reload(metrics, true);
    }

    fn reload(&self, metrics: &TlsMetrics, force: bool) {
        let inner = &self.0;
        let outcome = read_pair(&inner.cert_file, &inner.key_file);
        let read = match &outcome {
            Ok((digest, _)) => Read::Contents(*digest),
            Err(e) => Read::Unreadable(e.to_string()),
        };
        {
            let mut last = inner.last_read.lock().unwrap_or_else(|e| e.into_inner());
            if !force && *last == read {
                return;
            }
            *last = read;
        }
        match outcome.and_then(|(_, pair)| pair) {
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
            Err(e) => {
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

/// The digest of both files' contents (to notice a change) and the pair they make.
/// `Err` when a file cannot be read at all.
type ReadPair = ([u8; 32], Result<Arc<CertifiedKey>, PairError>);

fn read_pair(
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> Result<ReadPair, PairError> {
    let fail = |key: &'static str, file: &std::path::Path, problem: String| PairError {
        key,
        file: file.to_path_buf(),
        problem,
    };
    let cert_pem = std::fs::read(cert_file)
        .map_err(|e| fail("tls.cert_file", cert_file, format!("cannot read ({e})")))?;
    let key_pem = std::fs::read(key_file)
        .map_err(|e| fail("tls.key_file", key_file, format!("cannot read ({e})")))?;
    let mut digest = Context::new(&SHA256);
    digest.update(&(cert_pem.len() as u64).to_le_bytes());
    digest.update(&cert_pem);
    digest.update(&key_pem);
    let digest: [u8; 32] = digest
        .finish()
        .as_ref()
        .try_into()
        .expect("SHA-256 is 32 bytes");
    let pair = parse_pair(&cert_pem, &key_pem).map_err(|(key, problem)| {
        let file = if key == "tls.cert_file" {
            cert_file
        } else {
            key_file
        };
        fail(key, file, problem)
    });
    Ok((digest, pair))
}

/// The chain and key from their PEM texts, checked to belong together.
fn parse_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<Arc<CertifiedKey>, (&'static str, String)> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ("tls.cert_file", format!("not PEM certificates ({e})")))?;
    if chain.is_empty() {
        return Err(("tls.cert_file", "holds no PEM certificate".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        (
            "tls.key_file",
            format!("holds no PEM private key (PKCS#8, RSA or SEC1): {e}"),
        )
    })?;
    let signer = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| ("tls.key_file", format!("unsupported private key ({e})")))?;
    let pair = CertifiedKey::new(chain, signer);
    match pair.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(pair))
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err((
            "tls.key_file",
            "does not match the certificate in tls.cert_file (the chain's first certificate)"
                .into(),
        )),
        Err(e) => Err(("tls.cert_file", format!("not a usable certificate ({e})"))),
    }
}

/// Hands every handshake the pair in force.
#[derive(Debug)]
struct Resolver(CertStore);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

/// Polls the pair every `interval` (`tls.reload_interval_ms`) until `stop` turns true.
pub(super) async fn watch(
    store: CertStore,
    interval: Duration,
    metrics: TlsMetrics,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stop| *stop) => return,
        }
        let (store, metrics) = (store.clone(), metrics.clone());
        if let Err(e) = tokio::task::spawn_blocking(move || store.poll(&metrics)).await {
            tracing::warn!(error = %e, "TLS certificate poll failed");
        }
    }
}

/// The end-entity certificate's serial number in hex, read from its DER (`Certificate ::=
/// SEQUENCE { tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber INTEGER, …`).
fn serial_hex(pair: &CertifiedKey) -> Option<String> {
    let der = pair.end_entity_cert().ok()?;
    let (_, cert) = der_element(der, 0x30)?;
    let (_, tbs) = der_element(cert, 0x30)?;
    let tbs = match der_element(tbs, 0xa0) {
        Some((rest, _version)) => rest,
        None => tbs,
    };
    let (_, serial) = der_element(tbs, 0x02)?;
    Some(serial.iter().map(|b| format!("{b:02x}")).collect())
}

/// One DER element with tag `tag` at the start of `input`: (what follows it, its contents).
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len, rest) = rest.split_first()?;
    let (len, rest) = if len < 0x80 {
        (usize::from(len), rest)
    } else {
        let n = usize::from(len & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (&rest[len..], &rest[..len]))
}

#[cfg(test)]
mod tests {
    use super::der_element;

    #[test]
    fn der_lengths_short_and_long() {
        let short = [0x02, 0x02, 0x01, 0x02, 0xff];
        assert_eq!(der_element(&short, 0x02), Some((&[0xff][..], &[1, 2][..])));
        let mut long = vec![0x30, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        let (rest, body) = der_element(&long, 0x30).unwrap();
        assert!(rest.is_empty());
        assert_eq!(body.len(), 0x80);
        assert_eq!(der_element(&short, 0x30), None);
        assert_eq!(der_element(&[0x02, 0x05, 1], 0x02), None);
    }
}

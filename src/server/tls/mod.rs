//! The HTTPS listener: the rustls acceptor (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`),
//! its handshake bounded by what is left of `server.header_read_timeout_ms` since the
//! connection was accepted, and the poll that watches the certificate files;
//! `cert_store` holds the pair in force and re-reads it, `der` reads a certificate's
//! serial number for the logs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

mod cert_store;
mod der;
#[cfg(test)]
mod tests;

pub use cert_store::{CertStore, MAX_PEM_BYTES, PairError};

use crate::metrics::tls::{Handshake, TlsMetrics};

/// The HTTPS listener: a bound socket and the certificate store its handshakes use.
pub struct TlsListener {
    pub(in crate::server) listener: TcpListener,
    pub(in crate::server) acceptor: TlsAcceptor,
    pub(in crate::server) store: CertStore,
}

impl TlsListener {
    /// Serves `store`'s pair on `listener`: TLS 1.2 and 1.3 (rustls with the ring
    /// provider), ALPN `h2` then `http/1.1`; a client that offers no ALPN speaks HTTP/1.1,
    /// one that offers only others gets the `no_application_protocol` alert.
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

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The certificate store (to reload it on SIGHUP).
    pub fn store(&self) -> &CertStore {
        &self.store
    }
}

/// How a handshake attempt ended short of a session.
enum Failed {
    /// The peer closed (or reset) before sending a byte: a load balancer's TCP health
    /// check, a port scan.
    Closed,
    Tls(std::io::Error),
}

/// Runs the TLS handshake on `stream`, accepted at `opened`, until `opened + first`
/// (`server.header_read_timeout_ms`: the handshake counts against the time a connection
/// has for its first request, so a client that never finishes its handshake holds its
/// slot no longer than one that never finishes its request head) or until `stop` turns
/// true.
pub(in crate::server) async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    (opened, first): (Instant, Duration),
    metrics: &TlsMetrics,
    mut stop: watch::Receiver<bool>,
) -> Option<TlsStream<TcpStream>> {
    let attempt = async move {
        // Wait for the first byte without taking it: none at all is no handshake.
        let mut byte = [0u8; 1];
        match stream.peek(&mut byte).await {
            Ok(0) | Err(_) => return Err(Failed::Closed),
            Ok(_) => {}
        }
        acceptor.accept(stream).await.map_err(Failed::Tls)
    };
    let result = tokio::select! {
        result = tokio::time::timeout_at(opened + first, attempt) => result,
        _ = stop.wait_for(|stop| *stop) => return None,
    };
    match result {
        Ok(Ok(stream)) => {
            metrics.handshake(Handshake::Ok);
            Some(stream)
        }
        Ok(Err(Failed::Closed)) => {
            metrics.handshake(Handshake::Closed);
            tracing::trace!(%peer, "connection closed before its TLS handshake began");
            None
        }
        Ok(Err(Failed::Tls(e))) => {
            metrics.handshake(Handshake::Error);
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            metrics.handshake(Handshake::Timeout);
            tracing::debug!(
                %peer,
                "TLS handshake not finished within server.header_read_timeout_ms"
            );
            None
        }
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
/// Each poll reads the files on a blocking thread; a poll that hangs (a stuck network
/// file system) does not hold up the drain: the loop returns on `stop` without it.
pub(in crate::server) async fn watch(
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
        let poll = tokio::task::spawn_blocking(move || store.poll(&metrics));
        tokio::select! {
            polled = poll => if let Err(e) = polled {
                tracing::warn!(error = %e, "TLS certificate poll failed");
            },
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}

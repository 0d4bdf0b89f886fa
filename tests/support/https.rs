//! The HTTPS listener's test kit: a gateway serving both listeners on 127.0.0.1:0, and a
//! TLS client that reports what it negotiated; certificates come from [`super::certs`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use evalgate::server::{CertStore, Listeners, TlsListener};
use http::{Request, Version};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_rustls::client::TlsStream;

use super::certs::Issued;
use super::{Got, KEY, config_for};

/// Generous bound proving "does not hang", never a speed requirement.
pub const NO_HANG: Duration = Duration::from_secs(10);

/// A config serving `issued` on the TLS listener, upstream `upstream_url`.
pub fn tls_config(upstream_url: &str, issued: &Issued) -> evalgate::Config {
    let mut config = config_for(upstream_url);
    config.admin.listen = String::new();
    config.tls.listen = "127.0.0.1:0".into();
    config.tls.cert_file = issued.cert.display().to_string();
    config.tls.key_file = issued.key.display().to_string();
    config
}

/// A gateway serving HTTPS (and cleartext too, when asked) on 127.0.0.1:0.
pub struct TlsGateway {
    pub tls: SocketAddr,
    pub plain: Option<SocketAddr>,
    pub gateway: evalgate::Gateway,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TlsGateway {
    /// Serves `config` (validated here) with the pair in `config.tls`.
    pub async fn start(config: evalgate::Config, with_plain: bool) -> TlsGateway {
        let config = config.validate().expect("test config is valid");
        let certs = CertStore::load(&config.tls).expect("the test pair loads");
        let gateway = evalgate::Gateway::new(config).unwrap();
        let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls = tls_listener.local_addr().unwrap();
        let plain_listener = if with_plain {
            Some(TcpListener::bind("127.0.0.1:0").await.unwrap())
        } else {
            None
        };
        let plain = plain_listener.as_ref().map(|l| l.local_addr().unwrap());
        let listeners = Listeners {
            plain: plain_listener,
            tls: Some(TlsListener::new(tls_listener, certs)),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let served = gateway.clone();
        let task = tokio::spawn(async move {
            evalgate::serve_listeners(listeners, None, served, async {
                let _ = stopped.await;
            })
            .await;
        });
        TlsGateway {
            tls,
            plain,
            gateway,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `[ok, error]` certificate reloads so far.
    pub fn reloads(&self) -> [u64; 2] {
        self.gateway.metrics().tls().reloads()
    }

    /// `[ok, error, timeout, closed]` handshakes so far.
    pub fn handshakes(&self) -> [u64; 4] {
        self.gateway.metrics().tls().handshakes()
    }

    /// Waits until the handshake counters reach `at_least` (bounded).
    pub async fn wait_handshakes(&self, at_least: [u64; 4]) {
        tokio::time::timeout(NO_HANG, async {
            while self
                .handshakes()
                .iter()
                .zip(at_least)
                .any(|(now, want)| *now < want)
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!(
                "handshakes {:?}, waited for {at_least:?}",
                self.handshakes()
            )
        });
    }

    /// Waits until the reload counters reach `at_least` (the poll runs every
    /// `tls.reload_interval_ms`; this checks the counters between polls, bounded).
    pub async fn wait_reloads(&self, at_least: [u64; 2]) {
        tokio::time::timeout(NO_HANG, async {
            loop {
                let now = self.reloads();
                if now[0] >= at_least[0] && now[1] >= at_least[1] {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("reloads {:?}, waited for {at_least:?}", self.reloads()));
    }

    /// Starts the shutdown (the listeners close, connections drain) without waiting.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TlsGateway {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// How a test client connects: which CA it trusts, the ALPN it offers (none when empty),
/// the TLS versions it allows.
pub struct ClientOptions {
    pub ca: Vec<PathBuf>,
    pub alpn: &'static [&'static str],
    pub versions: &'static [&'static SupportedProtocolVersion],
}

impl ClientOptions {
    /// Trusts `ca`; both TLS versions, ALPN `h2` and `http/1.1`, like a browser.
    pub fn browser(ca: &[&Path]) -> Self {
        ClientOptions {
            ca: ca.iter().map(|p| p.to_path_buf()).collect(),
            alpn: &["h2", "http/1.1"],
            versions: rustls::ALL_VERSIONS,
        }
    }
}

/// One TLS connection to the gateway, and what was negotiated on it.
pub struct TlsConn {
    pub alpn: Option<Vec<u8>>,
    pub version: ProtocolVersion,
    /// The server's certificate, DER.
    pub peer_cert: Vec<u8>,
    sender: Sender,
    /// Drives the client side of the connection; ends when the connection closes.
    driver: JoinHandle<()>,
}

enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl TlsConn {
    /// Connects and handshakes; HTTP/2 when `h2` was negotiated, else HTTP/1.1.
    pub async fn open(addr: SocketAddr, options: &ClientOptions) -> TlsConn {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let stream = tls_handshake(tcp, options).await;
        let (_, session) = stream.get_ref();
        let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
        let version = session.protocol_version().unwrap();
        let peer_cert = session.peer_certificates().unwrap()[0].to_vec();
        let io = TokioIo::new(stream);
        let (sender, driver) = if alpn.as_deref() == Some(b"h2") {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await.unwrap();
            (
                Sender::H2(sender),
                tokio::spawn(async move { drop(conn.await) }),
            )
        } else {
            let (sender, conn) = http1::handshake(io).await.unwrap();
            (
                Sender::H1(sender),
                tokio::spawn(async move { drop(conn.await) }),
            )
        };
        TlsConn {
            alpn,
            version,
            peer_cert,
            sender,
            driver,
        }
    }

    /// Waits (bounded) until the gateway has closed this connection.
    pub async fn wait_closed(&mut self) {
        tokio::time::timeout(NO_HANG, &mut self.driver)
            .await
            .expect("the gateway closes the connection")
            .unwrap();
    }

    /// `GET path_and_query` with the test deployment key, on this connection; the answer
    /// and the HTTP version it came in.
    pub async fn get(&mut self, path_and_query: &str) -> (Got, Version) {
        self.get_with(path_and_query, &[]).await
    }

    /// Like [`TlsConn::get`], with more header fields.
    pub async fn get_with(
        &mut self,
        path_and_query: &str,
        headers: &[(&str, &str)],
    ) -> (Got, Version) {
        let request = |version| {
            let mut request = Request::get(format!("https://localhost{path_and_query}"))
                .version(version)
                .header("authorization", format!("Api-Key {KEY}"));
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            request.body(Empty::<Bytes>::new()).unwrap()
        };
        let response = match &mut self.sender {
            Sender::H1(sender) => {
                sender.ready().await.expect("the connection is still open");
                let mut req = request(Version::HTTP_11);
                // HTTP/1.1 requests name the host; the URI carries it for h2.
                *req.uri_mut() = path_and_query.parse().unwrap();
                req.headers_mut()
                    .insert("host", "localhost".parse().unwrap());
                sender.send_request(req).await
            }
            Sender::H2(sender) => {
                sender.ready().await.expect("the connection is still open");
                sender.send_request(request(Version::HTTP_2)).await
            }
        }
        .expect("the gateway answers");
        let version = response.version();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            Got {
                status: parts.status,
                headers: parts.headers,
                body,
            },
            version,
        )
    }
}

/// The client side of a TLS handshake on `tcp` (bounded by [`NO_HANG`]), as `options` say.
pub async fn tls_handshake(tcp: TcpStream, options: &ClientOptions) -> TlsStream<TcpStream> {
    try_tls_handshake(tcp, options)
        .await
        .expect("the handshake succeeds")
}

/// Like [`tls_handshake`], with the handshake's error.
pub async fn try_tls_handshake(
    tcp: TcpStream,
    options: &ClientOptions,
) -> std::io::Result<TlsStream<TcpStream>> {
    let mut roots = RootCertStore::empty();
    for ca in &options.ca {
        roots
            .add(CertificateDer::from_pem_file(ca).unwrap())
            .unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(options.versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = options.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let name = ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(NO_HANG, connector.connect(name, tcp))
        .await
        .expect("the handshake finishes")
}

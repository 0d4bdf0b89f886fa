//! `[tls]`: the HTTPS listener, beside the cleartext one or instead of it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::validate::{invalid, range};

/// `[tls]`: where the HTTPS listener binds and the PEM files it serves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Address of the HTTPS listener (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`); empty
    /// turns it off.
    pub listen: String,
    /// PEM certificate chain, the server's certificate first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, RSA or SEC1) of the chain's first certificate.
    pub key_file: String,
    /// How often both files are checked for a change; a changed, valid pair is served to
    /// new handshakes, a bad one is logged and the old pair kept.
    pub reload_interval_ms: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: String::new(),
            cert_file: String::new(),
            key_file: String::new(),
            reload_interval_ms: 5_000,
        }
    }
}

impl TlsConfig {
    /// Whether the HTTPS listener is on.
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty()
    }

    /// The listen address; valid after [`super::Config::validate`] when enabled.
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.parse().expect("validated tls.listen address")
    }

    /// The section's own checks (the files themselves are read by
    /// [`crate::server::tls::CertStore::load`]).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !self.enabled() {
            // Files named for a listener that is off would be silently ignored.
            let named = [
                ("tls.cert_file", &self.cert_file),
                ("tls.key_file", &self.key_file),
            ]
            .into_iter()
            .find(|(_, file)| !file.is_empty());
            return match named {
                Some((key, _)) => Err(invalid(
                    "tls.listen",
                    format!(
                        "is empty but {key} is set: set tls.listen to serve HTTPS, or remove the files"
                    ),
                )),
                None => Ok(()),
            };
        }
        self.listen
            .parse::<SocketAddr>()
            .map_err(|e| invalid("tls.listen", format!("not an IP:port address ({e})")))?;
        if self.cert_file.is_empty() {
            return Err(invalid(
                "tls.cert_file",
                "must name a PEM certificate file when tls.listen is set".into(),
            ));
        }
        if self.key_file.is_empty() {
            return Err(invalid(
                "tls.key_file",
                "must name a PEM private key file when tls.listen is set".into(),
            ));
        }
        range(
            "tls.reload_interval_ms",
            self.reload_interval_ms,
            100,
            3_600_000,
        )
    }
}

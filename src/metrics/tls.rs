//! The HTTPS listener's metrics: handshakes by result and certificate reloads by result,
//! recorded by [`crate::server::tls`] once per connection and once per reload.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use super::labels::{family, one_label};

/// `result` label values of TLS handshakes.
pub const HANDSHAKE_RESULTS: [&str; 4] = ["ok", "error", "timeout", "closed"];
/// `result` label values of certificate reloads.
pub const RELOAD_RESULTS: [&str; 2] = ["ok", "error"];

/// How one TLS handshake ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    Ok,
    /// The client sent something that is not a handshake we accept (no common version or
    /// cipher suite, no common ALPN protocol, a certificate it refused, garbage), or closed
    /// midway.
    Error,
    /// Not finished within `server.header_read_timeout_ms`.
    Timeout,
    /// The client closed (or reset) the connection before sending a byte: TCP health
    /// checks and port scans, not failed handshakes.
    Closed,
}

/// Handles on the TLS metrics; cheap to clone (each is one `Arc`).
#[derive(Clone, Default)]
pub struct TlsMetrics {
    handshakes: [Counter; HANDSHAKE_RESULTS.len()],
    reloads: [Counter; RELOAD_RESULTS.len()],
}

impl TlsMetrics {
    pub(super) fn register(registry: &mut Registry) -> TlsMetrics {
        let handshakes = family(
            registry,
            "tls_handshakes",
            "TLS handshakes on the HTTPS listener, by result (timeout: not finished within \
             server.header_read_timeout_ms; closed: the client closed before sending a byte)",
            one_label("result", HANDSHAKE_RESULTS),
        );
        let reloads = family(
            registry,
            "tls_cert_reloads",
            "Reloads of tls.cert_file and tls.key_file after a change or SIGHUP, by result \
             (error: the previous pair keeps serving)",
            one_label("result", RELOAD_RESULTS),
        );
        TlsMetrics {
            handshakes,
            reloads,
        }
    }

    pub fn handshake(&self, result: Handshake) {
        let i = match result {
            Handshake::Ok => 0,
            Handshake::Error => 1,
            Handshake::Timeout => 2,
            Handshake::Closed => 3,
        };
        self.handshakes[i].inc();
    }

    /// A reload of the pair ended; `ok`: the new pair is served.
    pub fn reload(&self, ok: bool) {
        self.reloads[usize::from(!ok)].inc();
    }

    /// Handshakes so far, in [`HANDSHAKE_RESULTS`] order.
    pub fn handshakes(&self) -> [u64; HANDSHAKE_RESULTS.len()] {
        self.handshakes.each_ref().map(Counter::get)
    }

    /// Reloads so far, in [`RELOAD_RESULTS`] order.
    pub fn reloads(&self) -> [u64; RELOAD_RESULTS.len()] {
        self.reloads.each_ref().map(Counter::get)
    }
}

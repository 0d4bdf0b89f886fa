//! `/healthz` (the process is up) and `/readyz` (send it traffic).
//!
//! Ready means: the public listener is serving, the config is loaded (a gateway exists),
//! shutdown has not started, and the upstream is not failing: with the embedded engine
//! its flags are loaded; with an HTTP upstream, it is not the case that exchanges were
//! attempted within the last `admin.ready_upstream_window_s` and none got an HTTP answer
//! (any status). Nothing asked within the window is unknown, and ready: an idle gateway
//! stays in the load balancer. Readiness turns false the moment shutdown starts, while
//! requests in flight still finish, so a load balancer drains evalgate before it stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use http::{Response, StatusCode};
use tokio::sync::watch;

use crate::gateway::Gateway;
use crate::metrics::UpstreamHealth;
use crate::response::Body;

/// The server's part of readiness: listening, then draining. Cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

struct Inner {
    listening: AtomicBool,
    draining: watch::Sender<bool>,
}

impl Default for Readiness {
    fn default() -> Readiness {
        Readiness {
            inner: Arc::new(Inner {
                listening: AtomicBool::new(false),
                draining: watch::Sender::new(false),
            }),
        }
    }
}

impl Readiness {
    /// The public listener is accepting.
    pub fn set_listening(&self) {
        self.inner.listening.store(true, Ordering::SeqCst);
    }

    /// Shutdown started: not ready from now on.
    pub fn start_draining(&self) {
        self.inner.draining.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.inner.draining.borrow()
    }

    pub fn is_listening(&self) -> bool {
        self.inner.listening.load(Ordering::SeqCst)
    }

    /// Resolves once shutdown has started.
    pub async fn draining(&self) {
        let mut rx = self.inner.draining.subscribe();
        let _ = rx.wait_for(|draining| *draining).await;
    }
}

/// `GET /healthz`: 200 while the process runs; with the shared tier, its state (`up` or
/// `down`: a Redis that is down degrades the instance, it does not make it unhealthy).
pub fn healthz(gateway: &Gateway) -> Response<Body> {
    let mut body = serde_json::json!({ "status": "ok" });
    if let Some(shared) = gateway.shared_cache() {
        body["shared_cache"] = shared.status().state.into();
    }
    super::json(StatusCode::OK, &body)
}

/// `GET /readyz`: 200 when ready, else 503; the body says which check failed.
pub fn readyz(gateway: &Gateway, readiness: &Readiness) -> Response<Body> {
    let upstream = match gateway.upstream().as_embedded() {
        // The engine cannot exist without loaded flags; a bad reload keeps the old ones.
        Some(_) => "embedded",
        None => gateway
            .metrics()
            .upstream_health(gateway.live().ready_upstream_window())
            .as_str(),
    };
    let listening = readiness.is_listening();
    let draining = readiness.is_draining();
    let ready = listening && !draining && upstream != UpstreamHealth::Failing.as_str();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::json!({
        "ready": ready,
        "listening": listening,
        "config_loaded": true,
        "draining": draining,
        "upstream": upstream,
    });
    // Shown, never required: without Redis the instance serves as a single box.
    if let Some(shared) = gateway.shared_cache() {
        body["shared_cache"] = shared.status().state.into();
    }
    super::json(status, &body)
}

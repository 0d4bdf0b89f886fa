//! Dropping stored answers: everything, or one deployment's; and the list of deployments
//! whose answers are stored, for the flag-change poller.

use std::sync::atomic::Ordering;

use super::Gateway;

impl Gateway {
    /// Drops every stored answer and keeps fetches already in flight from storing theirs:
    /// what the upstream answers has changed (embedded flags reloaded).
    pub fn invalidate_all(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.cache.invalidate_all();
        self.inner.metrics.purge(&PurgeScope::All);
    }

    /// Drops the stored answers in `scope` (and remembered 401s). Fetches already in flight
    /// are not stored when they land (one generation number for all: a purge may cost a
    /// concurrent fetch of another deployment its store, never a stale entry).
    pub async fn purge(&self, scope: &PurgeScope) {
        match scope {
            PurgeScope::All => self.invalidate_all(),
            PurgeScope::Deployment(key) => {
                self.inner.generation.fetch_add(1, Ordering::SeqCst);
                self.inner.cache.invalidate_deployment(key).await;
                self.inner.metrics.purge(scope);
            }
        }
        tracing::info!(scope = %scope, "cache purged");
    }

    /// Deployment keys whose answers were stored (bounded; oldest first out), for the
    /// flag-change poller.
    pub fn served_deployments(&self) -> Vec<String> {
        let seen = self
            .inner
            .deployments
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        seen.iter().cloned().collect()
    }
}

impl Gateway {
    /// Remembers a deployment whose answer was stored (miss path only).
    pub(super) fn note_deployment(&self, deployment: &str) {
        let mut seen = self
            .inner
            .deployments
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if seen.iter().any(|d| d == deployment) {
            return;
        }
        if seen.len() >= MAX_TRACKED_DEPLOYMENTS {
            seen.pop_front();
        }
        seen.push_back(deployment.to_string());
    }
}

/// Deployments the flag-change poller follows at most.
const MAX_TRACKED_DEPLOYMENTS: usize = 1024;

/// What a purge drops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeScope {
    All,
    /// One deployment key's entries.
    Deployment(String),
}

impl std::fmt::Display for PurgeScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PurgeScope::All => f.write_str("all"),
            PurgeScope::Deployment(key) => write!(f, "deployment {}", crate::mask::Masked(key)),
        }
    }
}

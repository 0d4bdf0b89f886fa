//! Dropping stored answers: everything, or one deployment's; and the list of deployments
//! whose answers are stored, for the flag-change poller.

use std::sync::atomic::Ordering;

use super::Gateway;
use crate::shared_cache::Fanout;

impl Gateway {
    /// Drops every stored answer and keeps fetches already in flight from storing theirs:
    /// what the upstream answers has changed (embedded flags reloaded). With the shared
    /// tier, the fleet drops them too (in a task: this is called from sync code).
    pub fn invalidate_all(&self) {
        self.purge_local(&PurgeScope::All);
        if let Some(shared) = self.inner.shared.clone()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            drop(runtime.spawn(async move { shared.purge(None).await }));
        }
    }

    /// Drops the stored answers in `scope` (and remembered 401s), here and, with the
    /// shared tier, on every instance of the fleet. Fetches already in flight are not
    /// stored when they land (one generation number for all: a purge may cost a
    /// concurrent fetch of another deployment its store, never a stale entry).
    /// Returns what became of the purge beyond this instance (`None`: no shared tier).
    pub async fn purge(&self, scope: &PurgeScope) -> Option<Fanout> {
        self.purge_local(scope);
        tracing::info!(scope = %scope, "cache purged");
        let shared = self.inner.shared.as_ref()?;
        let fanout = match scope {
            PurgeScope::All => shared.purge(None).await,
            PurgeScope::Deployment(key) => shared.purge(Some(key)).await,
        };
        // Until Redis had the new generation, a request here could read a purged answer
        // back from Redis under the old one and store it: drop the scope once more, now
        // that reads use the new generation.
        if fanout == Fanout::Sent {
            self.drop_entries(scope);
        }
        Some(fanout)
    }

    /// Drops the stored answers in `scope` on this instance only (a purge announced by
    /// another instance of the fleet, or the first half of [`Gateway::purge`]).
    pub fn purge_local(&self, scope: &PurgeScope) {
        self.drop_entries(scope);
        self.inner.metrics.purge(scope);
    }

    /// Drops the L1 entries in `scope`, and keeps fetches in flight from storing theirs.
    fn drop_entries(&self, scope: &PurgeScope) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
        match scope {
            PurgeScope::All => self.inner.cache.invalidate_all(),
            PurgeScope::Deployment(key) => self.inner.cache.invalidate_deployment_now(key),
        }
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
        if let Some(shared) = &self.inner.shared {
            shared.note(deployment);
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

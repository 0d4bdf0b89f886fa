//! Dropping stored answers: everything, or one deployment's; and the list of deployments
//! whose answers are stored, for the flag-change poller.

use std::sync::atomic::Ordering;

use super::Gateway;
use crate::shared_cache::Fanout;

impl Gateway {
    /// Drops every stored answer and keeps fetches already in flight from storing theirs:
    /// what the upstream answers has changed (embedded flags reloaded). Local only: with
    /// the shared tier, the engine's flags digest is part of every entry's name, so the
    /// new flags read and write entries of their own.
    pub fn invalidate_all(&self) {
        self.purge_local(&PurgeScope::All);
    }

    /// The embedded engine loaded new flags for `keys` (one flags file's deployments):
    /// drops their stored answers, everyone's when that file is the only one. Local only,
    /// as [`Gateway::invalidate_all`]: with the shared tier, each deployment's flags digest
    /// is part of its entries' names.
    pub fn flags_reloaded(&self, keys: &[String]) {
        let one_file = self
            .upstream()
            .as_embedded()
            .is_none_or(|engine| engine.file_count() <= 1);
        if one_file {
            self.invalidate_all();
            return;
        }
        for key in keys {
            self.purge_local(&PurgeScope::Deployment(key.clone()));
        }
    }

    /// Drops the stored answers in `scope` (and remembered 401s), here and, with the
    /// shared tier, on every instance of the fleet. Fetches already in flight are not
    /// stored when they land (one generation number for all: a purge may cost a
    /// concurrent fetch of another deployment its store, never a stale entry).
    /// Returns what became of the purge beyond this instance (`None`: no shared tier).
    pub async fn purge(&self, scope: &PurgeScope) -> Option<Fanout> {
        let deployment = match scope {
            PurgeScope::All => None,
            PurgeScope::Deployment(key) => Some(key.as_str()),
        };
        // The tier's generation first: a miss that sees the local purge below must not
        // read the shared tier under the old generation and bring the old answer back.
        let begun = self
            .inner
            .shared
            .as_ref()
            .map(|s| s.begin_purge(deployment));
        self.purge_local(scope);
        tracing::info!(scope = %scope, "cache purged");
        let shared = self.inner.shared.as_ref()?;
        let fanout = shared.finish_purge(begun?).await;
        // A miss that read the old answer from Redis just before the generation rose can
        // store it in L1 in the very instant of the drop above, which moka's invalidation
        // then does not see (seen in CI). By now, a round trip later, that insert is done:
        // a second drop catches it.
        self.drop_entries(scope);
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

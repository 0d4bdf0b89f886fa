//! Purges by generation: every purge raises a counter; a purge of everything sets a floor
//! under which no entry is served, a purge of one deployment records the counter for it.
//! An entry records the counter as it is stored, and is hidden when it is older than the
//! floor or than its deployment's last purge; it goes at its next read or the next sweep
//! ([`super::sweep`]).
//!
//! moka's invalidation closures would do the same for a deployment, but cost every entry a
//! node in a write-order queue (32 bytes, docs/memory.md); this costs it eight bytes of its
//! value. Because an entry keeps its generation when a compressed variant is added to it,
//! nothing inserted after a purge brings back what the purge hid.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::key::CacheKey;

/// Deployments whose last purge is remembered at once (until a purge of everything).
/// Past it, a purge of one more deployment purges everything: more than asked, never
/// less ([`Purges::purge`]).
pub const MAX_PURGED_DEPLOYMENTS: usize = 16_384;

/// What hides entries, published whole so that a read sees one consistent state.
#[derive(Debug, Default)]
struct Hidden {
    /// Entries stored under an older generation are hidden: set by a purge of everything.
    floor: u64,
    /// Deployment key → the generation its last purge raised the counter to, since the
    /// last purge of everything.
    purged: HashMap<Arc<str>, u64>,
}

/// The purge generations.
#[derive(Debug)]
pub(super) struct Purges {
    /// Raised by every purge; an entry records it as it is stored. Written under `write`.
    current: AtomicU64,
    /// Read on every hit, so swapped whole (purges are rare) rather than locked: one load
    /// gives the floor and the deployment purges of the same moment.
    hidden: ArcSwap<Hidden>,
    /// Serializes purges.
    write: Mutex<()>,
    /// [`MAX_PURGED_DEPLOYMENTS`] (smaller in tests).
    max: usize,
}

impl Default for Purges {
    fn default() -> Purges {
        Purges::with_max(MAX_PURGED_DEPLOYMENTS)
    }
}

impl Purges {
    pub fn with_max(max: usize) -> Purges {
        Purges {
            current: AtomicU64::new(0),
            hidden: ArcSwap::default(),
            write: Mutex::new(()),
            max,
        }
    }

    /// The generation an entry stored now records.
    pub fn current(&self) -> u64 {
        self.current.load(Ordering::SeqCst)
    }

    /// Raises the counter (under `write`) and returns the new generation.
    fn raise(&self) -> u64 {
        let generation = self.current.load(Ordering::SeqCst) + 1;
        self.current.store(generation, Ordering::SeqCst);
        generation
    }

    /// Hides every entry of `deployment` stored so far. Returns `false`, purging nothing,
    /// when [`MAX_PURGED_DEPLOYMENTS`] others are remembered already: the caller purges
    /// everything instead.
    pub fn purge(&self, deployment: &str) -> bool {
        let _write = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let hidden = self.hidden.load();
        if hidden.purged.len() >= self.max && !hidden.purged.contains_key(deployment) {
            return false;
        }
        let generation = self.raise();
        let mut purged = hidden.purged.clone();
        purged.insert(deployment.into(), generation);
        self.hidden.store(Arc::new(Hidden {
            floor: hidden.floor,
            purged,
        }));
        true
    }

    /// Hides every entry stored so far, and forgets the deployment purges (the floor
    /// covers what they hid). Under the same lock as [`Purges::purge`]: a deployment purge
    /// either comes after this one and is kept, or came before and is covered.
    pub fn purge_all(&self) {
        let _write = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let floor = self.raise();
        self.hidden.store(Arc::new(Hidden {
            floor,
            purged: HashMap::new(),
        }));
    }

    /// Whether an entry stored for `key` under `generation` is hidden by a purge.
    pub fn hides(&self, key: &CacheKey, generation: u64) -> bool {
        let hidden = self.hidden.load();
        generation < hidden.floor
            || (!hidden.purged.is_empty()
                && hidden
                    .purged
                    .get(key.deployment())
                    .is_some_and(|&at| generation < at))
    }

    /// Deployments whose purge is remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.hidden.load().purged.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::RouteFamily;

    fn key(deployment: &str) -> CacheKey {
        CacheKey::new(
            RouteFamily::V1Vardata,
            deployment,
            None,
            "/v1/vardata?u=1".into(),
        )
    }

    #[test]
    fn a_purge_hides_what_was_stored_before_it_and_only_that_deployment() {
        let purges = Purges::default();
        let before = purges.current();
        assert!(!purges.hides(&key("a"), before));
        assert!(purges.purge("a"));
        let after = purges.current();
        assert!(after > before);
        assert!(purges.hides(&key("a"), before));
        assert!(!purges.hides(&key("a"), after));
        assert!(!purges.hides(&key("b"), before));
        // A second purge of the same deployment hides what was stored between.
        assert!(purges.purge("a"));
        assert!(purges.hides(&key("a"), after));
        assert_eq!(purges.len(), 1);
    }

    #[test]
    fn a_purge_of_everything_hides_all_that_came_before_and_keeps_later_purges() {
        let purges = Purges::default();
        let old = purges.current();
        assert!(purges.purge("a"));
        purges.purge_all();
        assert_eq!(purges.len(), 0);
        let between = purges.current();
        assert!(purges.hides(&key("a"), old));
        assert!(purges.hides(&key("b"), old));
        assert!(!purges.hides(&key("b"), between));
        // A deployment purge after it is remembered, and hides what came between.
        assert!(purges.purge("b"));
        assert!(purges.hides(&key("b"), between));
        assert!(!purges.hides(&key("a"), between));
    }

    #[test]
    fn past_the_bound_a_new_deployment_is_refused_and_a_known_one_is_not() {
        let purges = Purges::with_max(64);
        for i in 0..64 {
            assert!(purges.purge(&format!("d{i}")));
        }
        let before = purges.current();
        assert!(!purges.purge("one-more"));
        assert_eq!(purges.current(), before, "a refused purge raises nothing");
        assert!(purges.purge("d7"));
        purges.purge_all();
        assert!(purges.purge("one-more"));
    }
}

//! Fill locks this instance may have left in Redis with nobody to fill them: a lock call
//! that timed out (it may still run when a frozen server catches up), or a fill whose
//! write was skipped or failed. They are remembered (bounded) and released by the
//! maintenance task, each only if this instance still holds it, so that a peer never
//! waits out a lock nobody will fill.

use super::SharedCache;
use super::entries::Token;
use super::scripts::RELEASE;

/// A fill lock (its name and token) that may be left in Redis with nobody to fill it.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub(super) lock: String,
    pub(super) token: Token,
}

/// Orphaned locks remembered at most; past it they are left to expire (`lock_ttl_ms`).
const ORPHANS: usize = 1024;

impl SharedCache {
    /// A lock call that timed out may still take the lock in Redis (it runs when the
    /// server catches up): remember it. An error reply took none; a skipped call was
    /// never sent.
    pub(super) fn orphaned(&self, lock: &str, token: Token, error: &super::CallError) {
        if *error == super::CallError::Timeout {
            self.remember(Some(Orphan {
                lock: lock.to_string(),
                token,
            }));
        }
    }

    pub(super) fn remember(&self, orphan: Option<Orphan>) {
        let Some(orphan) = orphan else { return };
        let mut orphans = self.inner.orphans.lock().unwrap_or_else(|e| e.into_inner());
        if orphans.len() < ORPHANS {
            orphans.push(orphan);
        }
    }

    /// Releases the fill locks this instance may have left behind (each only if it still
    /// holds it); those not released are kept for the next attempt.
    pub(super) async fn release_orphans(&self) -> Result<(), super::CallError> {
        let orphans =
            std::mem::take(&mut *self.inner.orphans.lock().unwrap_or_else(|e| e.into_inner()));
        let mut left = orphans.into_iter();
        while let Some(orphan) = left.next() {
            let result = self
                .inner
                .calls
                .call_anyway("release", |mut conn| {
                    let orphan = orphan.clone();
                    async move {
                        RELEASE
                            .key(&orphan.lock)
                            .arg(&orphan.token.0)
                            .invoke_async::<i64>(&mut conn)
                            .await
                    }
                })
                .await;
            self.metrics().op(
                "release",
                result.as_ref().map_or_else(|e| e.result(), |_| "ok"),
            );
            if let Err(e) = result {
                let mut orphans = self.inner.orphans.lock().unwrap_or_else(|e| e.into_inner());
                orphans.push(orphan);
                orphans.extend(left);
                orphans.truncate(ORPHANS);
                return Err(e);
            }
        }
        Ok(())
    }
}

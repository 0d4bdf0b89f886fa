//! Compressed variants of a stored answer: made once per encoding, when first asked for,
//! and kept with the entry (counted in its weight). moka weighs an entry when it is
//! inserted, so adding a variant replaces the entry, and only while the stored entry is
//! still the one the variant was made from: a purge or a newer fill is never undone.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use moka::ops::compute::Op;

use super::{CachedResponse, ResponseCache};
use crate::compression::Encoding;
use crate::key::CacheKey;

/// The compressed bodies of one entry. Entries without any keep `None` (one pointer),
/// so the cache holds no more per entry than without compression.
#[derive(Debug, Default, Clone)]
pub struct Variants {
    gzip: Option<Bytes>,
    br: Option<Bytes>,
}

impl Variants {
    /// Only `encoding`'s bytes.
    pub fn one(encoding: Encoding, bytes: Bytes) -> Variants {
        Variants::default().with(encoding, bytes)
    }

    pub fn get(&self, encoding: Encoding) -> Option<&Bytes> {
        match encoding {
            Encoding::Gzip => self.gzip.as_ref(),
            Encoding::Br => self.br.as_ref(),
        }
    }

    fn with(mut self, encoding: Encoding, bytes: Bytes) -> Variants {
        match encoding {
            Encoding::Gzip => self.gzip = Some(bytes),
            Encoding::Br => self.br = Some(bytes),
        }
        self
    }

    /// Bytes held, for the entry's weight.
    pub(super) fn len(&self) -> usize {
        self.gzip.as_ref().map_or(0, Bytes::len) + self.br.as_ref().map_or(0, Bytes::len)
    }
}

impl CachedResponse {
    /// The stored `encoding` variant, if made already.
    pub fn variant(&self, encoding: Encoding) -> Option<&Bytes> {
        self.variants.as_ref()?.get(encoding)
    }

    /// Whether `body` is this entry's body itself (the same allocation, not equal bytes):
    /// while the caller holds `body`, no other entry can have it.
    pub fn has_body(&self, body: &Bytes) -> bool {
        self.body.as_ptr() == body.as_ptr() && self.body.len() == body.len()
    }
}

impl ResponseCache {
    /// Keeps `bytes`, `source`'s body compressed in `encoding`, with `key`'s entry, if
    /// that entry is still `source` (same body) and no purge or removal came in since;
    /// returns whether it was kept. The entry is replaced with one that also holds
    /// `bytes` (and is weighed again), its lifetime unchanged.
    pub async fn add_variant(
        &self,
        key: &CacheKey,
        source: &CachedResponse,
        encoding: Encoding,
        bytes: Bytes,
    ) -> bool {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let mut added: Option<Arc<Variants>> = None;
        #[cfg(test)]
        let hook = self.put_hook.clone();
        self.inner
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let op = match current {
                    Some(current)
                        if current.value().has_body(&source.body)
                            && self.epoch.load(Ordering::SeqCst) == epoch =>
                    {
                        let mut entry = current.into_value();
                        let variants = entry.variants.as_deref().cloned().unwrap_or_default();
                        let variants = Arc::new(variants.with(encoding, bytes));
                        added = Some(variants.clone());
                        entry.variants = Some(variants);
                        Op::Put(entry)
                    }
                    _ => Op::Nop,
                };
                async move {
                    // Tests hold the insert here, after the check, to land a purge in
                    // between.
                    #[cfg(test)]
                    if let (Some(hook), Op::Put(_)) = (hook, &op) {
                        hook.reached.notify_one();
                        hook.proceed.notified().await;
                    }
                    op
                }
            })
            .await;
        let Some(added) = added else {
            return false;
        };
        if self.epoch.load(Ordering::SeqCst) == epoch {
            return true;
        }
        // A purge or removal came in between the check and the insert, and may not
        // have seen what was inserted: drop it, unless something newer replaced it.
        self.inner
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let ours = current.as_ref().is_some_and(|c| {
                    c.value()
                        .variants
                        .as_ref()
                        .is_some_and(|v| Arc::ptr_eq(v, &added))
                });
                std::future::ready(if ours { Op::Remove } else { Op::Nop })
            })
            .await;
        false
    }
}

/// Holds [`ResponseCache::add_variant`] between its check and its insert (tests only).
#[cfg(test)]
#[derive(Default)]
pub(super) struct PutHook {
    pub reached: tokio::sync::Notify,
    pub proceed: tokio::sync::Notify,
}

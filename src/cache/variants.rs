//! Compressed variants of a stored answer: made once per encoding, when first asked for,
//! and kept with the entry (counted in its weight). moka weighs an entry when it is
//! inserted, so adding a variant replaces the entry, and only while the stored entry is
//! still the one the variant was made from: a purge or a newer fill is never undone.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use moka::ops::compute::Op;
use tokio::time::Instant;

use super::{CachedResponse, ResponseCache, weight};
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

    /// Bytes held with the `Arc` around them, for the entry's weight: each body's
    /// allocation and the count `Bytes` allocates when it is first cloned.
    pub(super) fn heap_bytes(&self) -> usize {
        let body = |b: &Option<Bytes>| {
            b.as_ref().map_or(0, |b| {
                weight::allocation(b.len()) + weight::allocation(super::entry::BYTES_SHARED)
            })
        };
        weight::allocation(2 * std::mem::size_of::<usize>() + std::mem::size_of::<Variants>())
            + body(&self.gzip)
            + body(&self.br)
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
        self.body_slice().as_ptr() == body.as_ptr() && self.body_slice().len() == body.len()
    }

    /// Whether `other` holds this entry's body itself (the same allocation).
    pub fn same_body(&self, other: &CachedResponse) -> bool {
        Arc::ptr_eq(&self.body, &other.body)
    }
}

impl ResponseCache {
    /// Keeps `bytes`, `source`'s body compressed in `encoding`, with `key`'s entry, if
    /// that entry is still `source` (same body) and no purge or removal came in since;
    /// returns whether it was kept. The entry is replaced with one that also holds
    /// `bytes` (and is weighed again), its lifetime unchanged.
    ///
    /// An entry hidden by a purge of its deployment or past its lifetime gets no variant
    /// (and one added to it would keep its generation and lifetime: still hidden).
    ///
    /// A purge raises `purging`, then the epoch, hands moka its invalidation, and lowers
    /// `purging`; moka's invalidation covers only entries inserted before it. So, like a
    /// seqlock: no variant is added while a purge is in progress when this starts, and
    /// when one began (epoch moved) or is in progress after the insert, the insert may
    /// have come after the invalidation and is taken out again: whatever entry still
    /// holds `source`'s body (any newer fill has a body of its own allocation). The epoch
    /// is global: a purge of another deployment at that moment drops this entry too, a
    /// needless refill, never a wrong answer.
    pub async fn add_variant(
        &self,
        key: &CacheKey,
        source: &CachedResponse,
        encoding: Encoding,
        bytes: Bytes,
    ) -> bool {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if self.purging.load(Ordering::SeqCst) > 0 {
            return false;
        }
        let mut added = false;
        #[cfg(test)]
        let hook = self.put_hook.clone();
        self.segment(key)
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let op = match current {
                    Some(current)
                        if current.value().same_body(source)
                            && self.servable(key, current.value(), Instant::now())
                            && self.epoch.load(Ordering::SeqCst) == epoch =>
                    {
                        let mut entry = current.into_value();
                        let variants = entry.variants.as_deref().cloned().unwrap_or_default();
                        entry.variants = Some(Arc::new(variants.with(encoding, bytes)));
                        added = true;
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
        if !added {
            return false;
        }
        if self.epoch.load(Ordering::SeqCst) == epoch && self.purging.load(Ordering::SeqCst) == 0 {
            return true;
        }
        #[cfg(test)]
        if let Some(hook) = &self.cleanup_hook {
            hook.reached.notify_one();
            hook.proceed.notified().await;
        }
        self.drop_entry(key, source).await;
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

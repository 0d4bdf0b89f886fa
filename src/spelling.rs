//! The spelling memo: the cache key of recently seen `/v1/vardata` requests, by their exact
//! spelling, so that a request spelled byte for byte like an earlier one skips
//! normalization (decoding the query, canonicalizing `context`, encoding the canonical
//! query, hashing the key), which is most of what a hit costs in user space.
//!
//! It caches a pure function and nothing else. A spelling is every input
//! [`normalize::v1_vardata`] reads: the raw query, every value (in order) of the three
//! headers it looks at, and the normalization limits in force. A GET and a HEAD normalize
//! alike, and other methods never get here. The memo compares whole spellings, so a
//! collision of their hashes can only cost a lookup, never give a wrong key.
//!
//! Bounded: about `cache.spelling_memo_entries` spellings (in sets of four: a new spelling
//! pushes the oldest of its set out), each at most `cache.spelling_memo_max_bytes` together
//! with the key it keeps (plus ~200 bytes of structs). Only
//! spellings whose key was found in the cache are remembered, so a stream of one-off
//! misses costs a lookup each and does not churn the memo.
//!
//! [`normalize::v1_vardata`]: crate::normalize::v1_vardata

use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::Mutex;

use http::HeaderMap;

use crate::key::CacheKey;
use crate::normalize::{self, Limits};

/// Spellings per set: a spelling may sit in any way of the set its hash picks, so a few
/// hot spellings that share a set do not push each other out.
const WAYS: usize = 4;

/// Remembered spellings; see the module documentation.
pub struct SpellingMemo {
    /// Each set holds its spellings newest first.
    sets: Box<[Mutex<[Option<Remembered>; WAYS]>]>,
    max_bytes: usize,
    hasher: std::collections::hash_map::RandomState,
}

struct Remembered {
    /// The spelling's hash, compared before the spelling itself.
    hash: u64,
    spelling: Box<[u8]>,
    limits: Limits,
    key: CacheKey,
}

impl Remembered {
    fn is(&self, hash: u64, spelling: &[u8], limits: &Limits) -> bool {
        self.hash == hash && self.limits == *limits && *self.spelling == *spelling
    }
}

thread_local! {
    /// The spelling of the request at hand, built here so a lookup does not allocate.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl SpellingMemo {
    /// A memo of about `entries` spellings (rounded up to whole sets; 0 turns it off) of
    /// at most `max_bytes` each.
    pub fn new(entries: usize, max_bytes: usize) -> SpellingMemo {
        SpellingMemo {
            sets: (0..entries.div_ceil(WAYS))
                .map(|_| Mutex::new(Default::default()))
                .collect(),
            max_bytes,
            hasher: Default::default(),
        }
    }

    /// The key a `/v1/vardata` GET or HEAD with this query and headers normalizes to under
    /// `limits`, if this exact spelling was remembered.
    pub fn get(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
        limits: &Limits,
    ) -> Option<CacheKey> {
        if self.sets.is_empty() {
            return None;
        }
        SCRATCH.with(|scratch| {
            let mut spelling = scratch.try_borrow_mut().ok()?;
            if !spell(&mut spelling, query, headers, self.max_bytes) {
                return None;
            }
            let hash = self.hasher.hash_one(&**spelling);
            let set = self.set(hash).lock().unwrap_or_else(|e| e.into_inner());
            set.iter()
                .flatten()
                .find(|r| r.is(hash, &spelling, limits))
                .map(|r| r.key.clone())
        })
    }

    /// Remembers that this spelling normalizes to `key` under `limits`, as the newest of
    /// its set (the oldest of a full set goes).
    pub fn remember(
        &self,
        query: Option<&str>,
        headers: &HeaderMap,
        limits: &Limits,
        key: &CacheKey,
    ) {
        if self.sets.is_empty() {
            return;
        }
        let mut spelling = Vec::new();
        if !spell(&mut spelling, query, headers, self.max_bytes) {
            return;
        }
        // The key the entry keeps counts against the same bound as the spelling.
        if spelling.len() + key.heap_bytes() > self.max_bytes {
            return;
        }
        let hash = self.hasher.hash_one(&*spelling);
        let mut set = self.set(hash).lock().unwrap_or_else(|e| e.into_inner());
        if set.iter().flatten().any(|r| r.is(hash, &spelling, limits)) {
            return; // remembered meanwhile by a concurrent hit
        }
        set.rotate_right(1);
        set[0] = Some(Remembered {
            hash,
            spelling: spelling.into_boxed_slice(),
            limits: *limits,
            key: key.clone(),
        });
    }

    fn set(&self, hash: u64) -> &Mutex<[Option<Remembered>; WAYS]> {
        // The set count need not be a power of two.
        let i = ((u128::from(hash) * self.sets.len() as u128) >> 64) as usize;
        &self.sets[i]
    }
}

/// Writes the spelling of a request into `out`: each part length-prefixed, so no two
/// different requests spell alike. `false` when it would be longer than `max_bytes`.
fn spell(out: &mut Vec<u8>, query: Option<&str>, headers: &HeaderMap, max_bytes: usize) -> bool {
    out.clear();
    let mut part = |bytes: &[u8]| {
        // Checked before copying, so the buffer never grows past `max_bytes`.
        if out.len() + 8 + bytes.len() > max_bytes {
            return false;
        }
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
        true
    };
    // An absent query and an empty one normalize alike, but they are kept apart anyway:
    // the memo never needs to know that.
    let fits = match query {
        Some(q) => part(b"?") && part(q.as_bytes()),
        None => part(b""),
    };
    if !fits {
        return false;
    }
    for name in normalize::KEYED_HEADERS {
        let values = headers.get_all(name);
        let count = values.iter().count();
        if !part(&count.to_le_bytes()) {
            return false;
        }
        for value in values {
            if !part(value.as_bytes()) {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests;

//! Per-deployment hit ratios and the most-hit keys, for `/admin/stats`, in bounded memory.
//!
//! The table is split into [`SHARDS`] shards chosen by the key's precomputed hash, each a
//! short std `Mutex` over two small vectors: a lookup is a scan of at most
//! [`DEPLOYMENTS_PER_SHARD`] + [`KEYS_PER_SHARD`] entries, never an allocation once a
//! deployment is known, and two requests contend only when they land on the same shard.
//! When a shard is full the entry with the fewest lookups (deployments) or hits (keys)
//! makes room, and a newcomer key starts from that count (the space-saving algorithm): the
//! heaviest keys stay, and a count is never below the truth.
//!
//! Nothing here shows user data: keys are reported by route, masked deployment and the
//! first 32 bits of their hash.

use std::hash::BuildHasher;
use std::sync::Mutex;

use crate::key::{CacheKey, KeyHasher};
use crate::mask::Masked;
use crate::response::CacheStatus;

pub const SHARDS: usize = 16;
pub const DEPLOYMENTS_PER_SHARD: usize = 16;
pub const KEYS_PER_SHARD: usize = 16;

/// Lookups of one deployment's keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeploymentCounts {
    pub hits: u64,
    pub stale: u64,
    pub misses: u64,
}

impl DeploymentCounts {
    fn lookups(&self) -> u64 {
        self.hits + self.stale + self.misses
    }

    fn add(&mut self, other: &DeploymentCounts) {
        self.hits += other.hits;
        self.stale += other.stale;
        self.misses += other.misses;
    }
}

/// One deployment in `/admin/stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeploymentStats {
    /// The deployment key, masked.
    pub deployment: String,
    #[serde(flatten)]
    pub counts: DeploymentCounts,
    /// (hits + stale) / lookups.
    pub hit_ratio: Option<f64>,
}

/// One of the most-hit keys in `/admin/stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyStats {
    pub route: &'static str,
    /// The deployment key, masked.
    pub deployment: String,
    /// The first 32 bits of the key's hash, in hex: stable while the process runs.
    pub key: String,
    /// Hits and stale answers (an upper bound once the key table has been full).
    pub hits: u64,
}

struct DeploymentSlot {
    deployment: Box<str>,
    counts: DeploymentCounts,
}

/// Holds the key itself (one `Arc`, no copy) so a replacement on the hit path does not
/// allocate; it is only ever shown masked and hashed.
struct KeySlot {
    hash: u64,
    key: CacheKey,
    hits: u64,
}

#[derive(Default)]
struct Shard {
    deployments: Vec<DeploymentSlot>,
    keys: Vec<KeySlot>,
}

/// The bounded tracker.
pub struct Traffic {
    shards: Box<[Mutex<Shard>]>,
}

impl Default for Traffic {
    fn default() -> Traffic {
        Traffic {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Traffic {
    /// Records one lookup of `key`. Bypasses are not lookups and are not recorded.
    pub fn record(&self, key: &CacheKey, cache: CacheStatus) {
        let hash = KeyHasher::default().hash_one(key);
        let mut shard = self.shards[(hash as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let counts = shard.deployment(key.deployment());
        let hit = match cache {
            CacheStatus::Hit => {
                counts.hits += 1;
                true
            }
            CacheStatus::Stale => {
                counts.stale += 1;
                true
            }
            CacheStatus::Miss => {
                counts.misses += 1;
                false
            }
            CacheStatus::Bypass => false,
        };
        if hit {
            shard.hit(hash, key);
        }
    }

    /// Deployments by lookups, most first.
    pub fn deployments(&self) -> Vec<DeploymentStats> {
        let mut merged: Vec<(Box<str>, DeploymentCounts)> = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for slot in &shard.deployments {
                match merged.iter_mut().find(|(d, _)| *d == slot.deployment) {
                    Some((_, counts)) => counts.add(&slot.counts),
                    None => merged.push((slot.deployment.clone(), slot.counts.clone())),
                }
            }
        }
        merged.sort_by_key(|(_, c)| std::cmp::Reverse(c.lookups()));
        merged
            .into_iter()
            .map(|(deployment, counts)| DeploymentStats {
                deployment: Masked(&deployment).to_string(),
                hit_ratio: ratio(counts.hits + counts.stale, counts.lookups()),
                counts,
            })
            .collect()
    }

    /// The `n` keys with the most hits, most first.
    pub fn top_keys(&self, n: usize) -> Vec<KeyStats> {
        let mut all: Vec<KeyStats> = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            all.extend(shard.keys.iter().map(|k| KeyStats {
                route: k.key.route().as_str(),
                deployment: Masked(k.key.deployment()).to_string(),
                key: format!("{:08x}", k.hash >> 32),
                hits: k.hits,
            }));
        }
        all.sort_by_key(|k| std::cmp::Reverse(k.hits));
        all.truncate(n);
        all
    }
}

impl Shard {
    fn deployment(&mut self, deployment: &str) -> &mut DeploymentCounts {
        let at = match self
            .deployments
            .iter()
            .position(|d| &*d.deployment == deployment)
        {
            Some(at) => at,
            None => {
                let slot = DeploymentSlot {
                    deployment: deployment.into(),
                    counts: DeploymentCounts::default(),
                };
                if self.deployments.len() < DEPLOYMENTS_PER_SHARD {
                    self.deployments.push(slot);
                    self.deployments.len() - 1
                } else {
                    let at = min_index(self.deployments.iter().map(|d| d.counts.lookups()));
                    self.deployments[at] = slot;
                    at
                }
            }
        };
        &mut self.deployments[at].counts
    }

    fn hit(&mut self, hash: u64, key: &CacheKey) {
        if let Some(slot) = self.keys.iter_mut().find(|k| k.hash == hash) {
            slot.hits += 1;
            return;
        }
        let slot = |hits| KeySlot {
            hash,
            key: key.clone(),
            hits,
        };
        if self.keys.len() < KEYS_PER_SHARD {
            self.keys.push(slot(1));
        } else {
            let at = min_index(self.keys.iter().map(|k| k.hits));
            let floor = self.keys[at].hits;
            self.keys[at] = slot(floor + 1);
        }
    }
}

fn min_index(values: impl Iterator<Item = u64>) -> usize {
    values
        .enumerate()
        .min_by_key(|&(_, v)| v)
        .map_or(0, |(i, _)| i)
}

/// `part / whole`, or `None` when there is nothing to divide.
pub fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::RouteFamily;

    fn key(user: usize, deployment: &str) -> CacheKey {
        CacheKey::new(
            RouteFamily::V1Vardata,
            deployment,
            None,
            format!("/v1/vardata?user_id={user}"),
        )
    }

    #[test]
    fn counts_per_deployment_and_keeps_the_heaviest_keys() {
        let t = Traffic::default();
        let hot = key(0, "server-key-aaaa");
        for _ in 0..500 {
            t.record(&hot, CacheStatus::Hit);
        }
        // Far more distinct keys than the table holds, each hit once.
        for user in 1..2_000 {
            t.record(&key(user, "server-key-bbbb"), CacheStatus::Miss);
            t.record(&key(user, "server-key-bbbb"), CacheStatus::Hit);
        }
        let top = t.top_keys(3);
        assert_eq!(top[0].hits, 500, "{top:?}");
        assert_eq!(top[0].deployment, "…aaaa");
        assert!(!top[0].key.contains("user"));
        let held: usize = t.shards.iter().map(|s| s.lock().unwrap().keys.len()).sum();
        assert!(held <= SHARDS * KEYS_PER_SHARD);

        let deployments = t.deployments();
        let b = deployments
            .iter()
            .find(|d| d.deployment == "…bbbb")
            .unwrap();
        assert_eq!(b.counts.misses, 1_999);
        assert_eq!(b.counts.hits, 1_999);
        assert_eq!(b.hit_ratio, Some(0.5));
    }

    #[test]
    fn deployments_stay_bounded() {
        let t = Traffic::default();
        for d in 0..5_000 {
            t.record(&key(0, &format!("server-key-{d}")), CacheStatus::Miss);
        }
        assert!(t.deployments().len() <= SHARDS * DEPLOYMENTS_PER_SHARD);
    }
}

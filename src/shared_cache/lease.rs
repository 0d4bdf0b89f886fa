//! Flag-change polling for a fleet: a lease per deployment names the one instance that
//! polls it each interval, and the flags' fingerprint kept in the generations hash tells
//! whether they changed (then the deployment is purged across the fleet).

use std::time::Duration;

use redis::Value;

use super::SharedCache;
use super::fanout::{now_ms, strings};
use super::names::Namer;
use super::random_u64;
use super::scripts::{FLAGS_CHANGED, LEASE};

impl SharedCache {
    /// Takes the lease on polling `deployment`'s flags for `interval`, or renews it when
    /// this instance holds it (so its poller keeps its own interval; others take over one
    /// interval after its last poll): `Some(true)` when this instance polls,
    /// `Some(false)` when another does, `None` when the tier is off (poll as a single box).
    pub async fn poll_lease(&self, deployment: &str, interval: Duration) -> Option<bool> {
        let tag = self.note(deployment);
        let key = self.inner.namer.poll_lease(tag);
        let owner = format!("{:016x}", self.inner.instance);
        let px = u64::try_from(interval.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let result = self
            .inner
            .calls
            .call("read", |mut conn| async move {
                LEASE
                    .key(&key)
                    .arg(&owner)
                    .arg(px)
                    .invoke_async::<i64>(&mut conn)
                    .await
            })
            .await;
        let metrics = self.metrics();
        match result {
            Ok(1) => {
                metrics.op("lease", "won");
                Some(true)
            }
            Ok(_) => {
                metrics.op("lease", "lost");
                Some(false)
            }
            Err(_) => {
                metrics.op("lease", "error");
                None
            }
        }
    }

    /// Records `deployment`'s flags fingerprint for the fleet. `Some(true)`: it differs
    /// from the one recorded, and the deployment was purged across the fleet (the caller
    /// drops its own L1 entries); `Some(false)`: first or unchanged; `None`: Redis failed.
    pub async fn flags_changed(&self, deployment: &str, fingerprint: u64) -> Option<bool> {
        let tag = self.note(deployment);
        let hash = self.inner.namer.generations();
        let f_field = Namer::fingerprint_field(tag);
        let g_field = Namer::gen_field(Some(tag));
        let epoch_candidate = random_u64().to_string();
        let result = self
            .inner
            .calls
            .call("purge", |mut conn| async move {
                let reply: Value = FLAGS_CHANGED
                    .key(&hash)
                    .arg(&f_field)
                    .arg(format!("{fingerprint:016x}"))
                    .arg(&g_field)
                    .arg(now_ms())
                    .arg(&epoch_candidate)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(strings(reply))
            })
            .await
            .ok()?;
        if result.first().map(String::as_str) != Some("1") {
            return Some(false);
        }
        self.metrics().op("purge", "ok");
        self.announce(Some(tag), &result[1..]).await;
        Some(true)
    }
}

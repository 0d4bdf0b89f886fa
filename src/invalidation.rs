//! Flag-change invalidation: poll each served deployment's flag configurations and purge
//! that deployment's answers when a flag changes, appears or disappears, as Amplitude's
//! CDN does. That makes long TTLs safe: answers are fresh within one poll interval.
//!
//! With the shared cache tier, a fleet polls each deployment once per interval between
//! all its instances: a lease in Redis names the one that polls, the flags' fingerprint
//! is kept in Redis, and a change purges the deployment on every instance. While the
//! tier is off, every instance polls for itself, as a single box does.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use tokio::sync::watch;

use crate::gateway::{Gateway, PurgeScope};
use crate::key::USER_AGENT;
use crate::mask::Masked;
use crate::upstream::Upstream;

/// A deployment's flags, reduced to what a change shows in: flag key → `flagVersion`
/// (as JSON text; absent → `null`).
type Versions = BTreeMap<String, String>;

/// Polls every `interval` until `stop` turns true.
pub async fn poll_flag_changes(
    gateway: Gateway,
    flags: Upstream,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut known: HashMap<String, Versions> = HashMap::new();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        for deployment in gateway.served_deployments() {
            let leased = match gateway.shared_cache() {
                Some(shared) => shared.poll_lease(&deployment, interval).await,
                None => None,
            };
            match leased {
                // Another instance polls it this interval.
                Some(false) => {}
                Some(true) => poll_for_fleet(&gateway, &flags, &deployment, &mut known).await,
                None => poll_one(&gateway, &flags, &deployment, &mut known).await,
            }
        }
    }
}

/// Polls one deployment; purges it when its flags changed since the last poll. A failed
/// poll purges nothing.
async fn poll_one(
    gateway: &Gateway,
    flags: &Upstream,
    deployment: &str,
    known: &mut HashMap<String, Versions>,
) {
    match fetch_versions(flags, deployment).await {
        Ok(versions) => {
            gateway.metrics().invalidation_poll(true);
            let previous = known.insert(deployment.to_string(), versions);
            if previous.is_some_and(|p| Some(&p) != known.get(deployment)) {
                tracing::info!(deployment = %Masked(deployment), "flags changed upstream; purging the deployment");
                gateway
                    .purge(&PurgeScope::Deployment(deployment.to_string()))
                    .await;
            }
        }
        Err(problem) => {
            gateway.metrics().invalidation_poll(false);
            tracing::warn!(deployment = %Masked(deployment), %problem, "flag-change poll failed; nothing purged");
        }
    }
}

/// Polls one deployment for the whole fleet (this instance holds the lease): the flags'
/// fingerprint is compared with the fleet's in Redis, and a change purges the deployment
/// on every instance. Falls back to [`poll_one`]'s local comparison when Redis fails.
async fn poll_for_fleet(
    gateway: &Gateway,
    flags: &Upstream,
    deployment: &str,
    known: &mut HashMap<String, Versions>,
) {
    let versions = match fetch_versions(flags, deployment).await {
        Ok(versions) => versions,
        Err(problem) => {
            gateway.metrics().invalidation_poll(false);
            tracing::warn!(deployment = %Masked(deployment), %problem, "flag-change poll failed; nothing purged");
            return;
        }
    };
    gateway.metrics().invalidation_poll(true);
    let fingerprint = fingerprint(&versions);
    let previous = known.insert(deployment.to_string(), versions);
    let changed_here = previous.is_some_and(|p| Some(&p) != known.get(deployment));
    let shared = gateway
        .shared_cache()
        .expect("leased through the shared tier");
    match shared.flags_changed(deployment, fingerprint).await {
        Some(true) => {
            tracing::info!(deployment = %Masked(deployment), "flags changed upstream; purging the deployment across the fleet");
            gateway.purge_local(&PurgeScope::Deployment(deployment.to_string()));
        }
        Some(false) => {}
        None if changed_here => {
            tracing::info!(deployment = %Masked(deployment), "flags changed upstream; purging the deployment");
            gateway
                .purge(&PurgeScope::Deployment(deployment.to_string()))
                .await;
        }
        None => {}
    }
}

/// A fingerprint of a deployment's flag versions (the first 64 bits of their SHA-256).
fn fingerprint(versions: &Versions) -> u64 {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    for (key, version) in versions {
        for part in [key.as_bytes(), version.as_bytes()] {
            digest.update(&(part.len() as u64).to_be_bytes());
            digest.update(part);
        }
    }
    let sum = digest.finish();
    u64::from_be_bytes(sum.as_ref()[..8].try_into().expect("32-byte digest"))
}

async fn fetch_versions(flags: &Upstream, deployment: &str) -> Result<Versions, String> {
    let auth = HeaderValue::try_from(format!("Api-Key {deployment}")).map_err(|e| e.to_string())?;
    let request = Request::builder()
        .method(Method::GET)
        .uri(format!("{}/sdk/v2/flags?v=0", flags.base()))
        .header(header::AUTHORIZATION, auth)
        .header(header::ACCEPT, HeaderValue::from_static("application/json"))
        .header(header::USER_AGENT, HeaderValue::from_static(USER_AGENT))
        .body(Bytes::new())
        .map_err(|e| e.to_string())?;
    let response = flags.send(request).await.map_err(|e| e.to_string())?;
    if response.status != StatusCode::OK {
        return Err(format!("flags endpoint answered {}", response.status));
    }
    versions(&response.body)
}

/// Flag key → `metadata.flagVersion` of a `/sdk/v2/flags` answer.
fn versions(body: &[u8]) -> Result<Versions, String> {
    let flags: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|e| format!("flags are not a JSON array: {e}"))?;
    flags
        .iter()
        .map(|flag| {
            let key = flag
                .get("key")
                .and_then(|k| k.as_str())
                .ok_or("a flag has no key")?;
            let version = flag
                .pointer("/metadata/flagVersion")
                .unwrap_or(&serde_json::Value::Null);
            Ok((key.to_string(), version.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::versions;

    #[test]
    fn fingerprints_follow_versions() {
        let a = versions(br#"[{"key":"a","metadata":{"flagVersion":1}}]"#).unwrap();
        let b = versions(br#"[{"key":"a","metadata":{"flagVersion":2}}]"#).unwrap();
        assert_eq!(super::fingerprint(&a), super::fingerprint(&a.clone()));
        assert_ne!(super::fingerprint(&a), super::fingerprint(&b));
    }

    #[test]
    fn versions_reduce_flags_to_key_and_version() {
        let v = versions(br#"[{"key":"b","metadata":{"flagVersion":3}},{"key":"a"}]"#).unwrap();
        assert_eq!(v.get("a").unwrap(), "null");
        assert_eq!(v.get("b").unwrap(), "3");
        assert!(versions(b"{}").is_err());
        assert!(versions(br#"[{"metadata":{}}]"#).is_err());
    }
}

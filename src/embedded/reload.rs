//! Watching the flags files: each reloaded on change on its own; a bad file keeps its
//! previous flags, and the other files are unaffected.

use std::time::Duration;

use tokio::sync::watch;

use super::{Embedded, Reload};

/// Polls the flags files every `interval` until `stop` turns true. After a file's new
/// flags are loaded, `on_reload` runs with the deployment keys that see them (the gateway
/// drops the answers computed from the old ones).
pub async fn watch_flags(
    engine: Embedded,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    on_reload: impl Fn(&[String]),
) {
    for file in engine.status() {
        tracing::info!(
            file = %file.flags_file,
            flags = file.flags,
            deployments = ?file.deployments,
            "embedded flags served"
        );
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the files were just loaded
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        // Reading and parsing a large file is blocking work; keep it off the workers.
        let e = engine.clone();
        let reloads = match tokio::task::spawn_blocking(move || e.reload_changed()).await {
            Ok(reloads) => reloads,
            Err(e) => {
                tracing::error!(error = %e, "flags reload task failed");
                continue;
            }
        };
        for (file, reload) in reloads {
            match reload {
                Reload::Reloaded(keys) => {
                    on_reload(&keys);
                    tracing::info!(
                        file = %file.flags_file,
                        flags = file.flags,
                        deployments = ?file.deployments,
                        "flags reloaded; these deployments' cached answers dropped"
                    );
                }
                Reload::Rejected(e) => tracing::error!(
                    error = %e,
                    deployments = ?file.deployments,
                    "flags file rejected; its previous flags keep serving"
                ),
            }
        }
    }
}

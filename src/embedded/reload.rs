//! Watching the flags file: reload on change, keep serving the old flags on a bad file.

use std::time::Duration;

use tokio::sync::watch;

use super::Embedded;
use crate::mask::Masked;

/// Polls the flags file every `interval` until `stop` turns true. After new flags are
/// loaded, `on_reload` runs (the gateway drops the answers computed from the old ones).
pub async fn watch_flags(
    engine: Embedded,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    on_reload: impl Fn(),
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await; // the first tick is immediate; the file was just loaded
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
        match tokio::task::spawn_blocking(move || e.reload_if_changed()).await {
            Ok(Ok(true)) => {
                on_reload();
                tracing::info!(
                    file = %engine.flags_file().display(),
                    flags = engine.flags().len(),
                    deployments = ?engine.keys().iter().map(|k| Masked(k).to_string()).collect::<Vec<_>>(),
                    "flags reloaded; cached answers dropped"
                );
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "flags file rejected; the previous flags keep serving")
            }
            Err(e) => tracing::error!(error = %e, "flags reload task failed"),
        }
    }
}

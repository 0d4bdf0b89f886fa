//! The tier's maintenance task: connects, subscribes to the purge channel, resyncs the
//! generations on an interval, and while the breaker is open probes Redis with backoff,
//! replays purges made meanwhile, releases fill locks left behind and resyncs before it
//! turns the tier back on.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, watch};

use super::SharedCache;
use super::fanout::RemotePurge;

impl SharedCache {
    /// The tier's maintenance, until `stop`: connect, subscribe, resync every
    /// `shared_cache.resync_interval_ms`, and bring the tier back after failures.
    /// `on_purge` drops L1 entries for purges made elsewhere.
    pub async fn run<P>(self, on_purge: P, mut stop: watch::Receiver<bool>)
    where
        P: Fn(RemotePurge) + Send + Sync + 'static,
    {
        let on_purge: std::sync::Arc<dyn Fn(RemotePurge) + Send + Sync> =
            std::sync::Arc::new(on_purge);
        let resync_now = self.inner.resync_now.clone();
        let subscriber = tokio::spawn(self.clone().subscribe(on_purge.clone(), resync_now.clone()));
        let config = self.inner.config.clone();
        let target = config.display_target();
        let mut backoff = Duration::from_millis(config.breaker_open_ms);
        let max_backoff = Duration::from_millis(config.breaker_max_open_ms);
        let mut connected = false;
        // Whether this outage was reported already.
        let mut warned = false;
        loop {
            if *stop.borrow() {
                break;
            }
            let breaker = &self.inner.calls.breaker;
            if breaker.closed() {
                // In use: resync on the interval, at once when asked, or probe when the
                // breaker opens.
                tokio::select! {
                    _ = tokio::time::sleep(config.resync_interval()) => {}
                    _ = resync_now.notified() => {}
                    _ = breaker.wait_opened() => {
                        // A notification left from an opening that a probe already
                        // undid is not news.
                        if !breaker.closed() {
                            self.set_up(false);
                        }
                        continue;
                    }
                    changed = stop.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        continue;
                    }
                }
                if self.replay_pending().await.is_err() {
                    tracing::debug!("shared cache: pending purges not replayed yet");
                }
                if self.release_orphans().await.is_err() {
                    tracing::debug!("shared cache: releasing abandoned fill locks failed");
                }
                if self.resync(on_purge.as_ref()).await.is_err() {
                    tracing::debug!("shared cache: resync failed");
                }
                continue;
            }
            // Off: (re)connect if needed, probe, replay purges, resync, then close.
            self.set_up(false);
            let ready = async {
                if !connected {
                    let conn = self.inner.target.connect(&config).await?;
                    self.inner.calls.set_conn(conn);
                    connected = true;
                }
                self.inner
                    .calls
                    .call_anyway("resync", |mut conn| async move {
                        redis::cmd("PING").query_async::<String>(&mut conn).await
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                self.replay_pending().await.map_err(|e| e.to_string())?;
                self.release_orphans().await.map_err(|e| e.to_string())?;
                self.resync(on_purge.as_ref())
                    .await
                    .map_err(|e| e.to_string())
            };
            match ready.await {
                Ok(()) => {
                    self.inner.calls.breaker.close();
                    self.set_up(true);
                    warned = false;
                    backoff = Duration::from_millis(config.breaker_open_ms);
                    tracing::info!(redis = %target, "shared cache tier in use");
                }
                Err(e) => {
                    // One warning per outage (at start-up: the first attempt), the
                    // retries at debug level.
                    if std::mem::replace(&mut warned, true) {
                        tracing::debug!(redis = %target, error = %e, retry_ms = backoff.as_millis() as u64, "shared cache: Redis still unreachable");
                    } else {
                        tracing::warn!(redis = %target, error = %e, "shared cache tier off: cannot reach Redis; serving as a single instance until it answers");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        changed = stop.changed() => {
                            if changed.is_err() {
                                break;
                            }
                        }
                    }
                    backoff = (backoff * 2).min(max_backoff);
                }
            }
        }
        subscriber.abort();
        self.drain(Duration::from_millis(config.timeout_ms * 2))
            .await;
    }

    /// Keeps one subscription to the purge channel, reconnecting with backoff; after each
    /// (re)subscription asks for a resync (announcements may have been missed meanwhile).
    async fn subscribe(
        self,
        on_purge: std::sync::Arc<dyn Fn(RemotePurge) + Send + Sync>,
        resync: std::sync::Arc<Notify>,
    ) {
        let config = self.inner.config.clone();
        let channel = self.inner.namer.channel();
        let clients = self.inner.target.pubsub_clients(&config);
        let mut backoff = Duration::from_millis(100);
        let max_backoff = config.resync_interval().max(Duration::from_millis(100));
        let mut next = 0usize;
        loop {
            let Some(client) = clients.get(next % clients.len().max(1)).cloned() else {
                return;
            };
            next += 1;
            let subscribed = async {
                let mut pubsub = client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                redis::RedisResult::Ok(pubsub)
            };
            match tokio::time::timeout(config.connect_timeout(), subscribed).await {
                Ok(Ok(pubsub)) => {
                    backoff = Duration::from_millis(100);
                    resync.notify_one();
                    let mut messages = pubsub.into_on_message();
                    while let Some(message) = messages.next().await {
                        let text =
                            String::from_utf8_lossy(message.get_payload_bytes()).into_owned();
                        self.on_message(&text, on_purge.as_ref(), &resync);
                    }
                    tracing::warn!(%channel, "shared cache: purge subscription lost; resubscribing");
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "shared cache: cannot subscribe"),
                Err(_) => tracing::debug!("shared cache: subscribing timed out"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(max_backoff);
        }
    }
}

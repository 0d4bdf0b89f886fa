//! Compressed answers: [`negotiate`] reads what a client accepts, [`codec`] compresses
//! and decodes; the [`Compressor`] here makes each stored answer's variant once per
//! encoding (however many requests ask at once) and keeps it with the entry
//! ([`crate::cache::Variants`]), so a hit serves stored bytes whatever its encoding.

pub mod codec;
pub mod negotiate;

pub use codec::{Coding, Levels};
pub use negotiate::{Accepted, Encoding};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::{Semaphore, watch};

use crate::cache::{CachedResponse, ResponseCache};
use crate::config::CompressionConfig;
use crate::key::CacheKey;
use crate::metrics::{CompressionMetrics, Skipped};
use crate::response::append_vary;

/// The largest body compressed on a worker at the default levels
/// ([`Levels::inline_bytes`]); upstream bodies past an eighth of it (they expand 5-10x)
/// are decoded on tokio's blocking pool.
pub const BLOCKING_BYTES: usize = 64 * 1024;

/// One compression in progress: the body (by its allocation) and the encoding.
type Job = (usize, usize, Encoding);

/// What the callers of one job see: running, then its result (`None`: it did not finish).
type Outcome = Option<Option<Bytes>>;

/// Jobs in progress; each caller of the same job watches the same channel.
type Jobs = Arc<Mutex<HashMap<Job, watch::Receiver<Outcome>>>>;

/// Makes compressed variants, once per body and encoding at a time, at most
/// `compression.max_concurrent` at once.
pub struct Compressor {
    enabled: bool,
    min_bytes: usize,
    levels: Levels,
    jobs: Jobs,
    /// One permit per compression running (`compression.max_concurrent`).
    permits: Arc<Semaphore>,
    metrics: CompressionMetrics,
}

impl Compressor {
    pub fn new(config: &CompressionConfig, metrics: CompressionMetrics) -> Compressor {
        Compressor {
            enabled: config.enabled,
            min_bytes: config.min_bytes,
            levels: Levels {
                gzip: config.gzip_level,
                brotli: config.brotli_quality,
            },
            jobs: Jobs::default(),
            permits: Arc::new(Semaphore::new(config.max_concurrent)),
            metrics,
        }
    }

    /// Whether answers are compressed at all (`compression.enabled`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// What a request accepts; identity only when compression is off.
    pub fn accepted(&self, headers: &http::HeaderMap) -> Accepted {
        if !self.enabled {
            return Accepted::IDENTITY;
        }
        Accepted::parse(headers.get_all(http::header::ACCEPT_ENCODING))
    }

    /// The encoding to answer `accepted` with a body of `len` bytes (`None`: identity).
    pub fn choose(&self, accepted: Accepted, len: usize) -> Option<Encoding> {
        accepted.choose(len, self.min_bytes)
    }

    /// `entry`'s body in `encoding`, stored for `key`: the stored variant, or made now
    /// (once, however many ask at once) and kept with the entry while it is still the one
    /// stored. `None`: answer identity (`compression.max_concurrent` compressions running,
    /// or this one cancelled at shutdown).
    ///
    /// The compression and the store run in a task of their own, so a client that goes
    /// away does not leave them half done: the variant is made and stored once.
    pub async fn stored(
        &self,
        cache: &ResponseCache,
        key: &CacheKey,
        entry: &CachedResponse,
        encoding: Encoding,
    ) -> Option<Bytes> {
        if let Some(bytes) = entry.variant(encoding) {
            return Some(bytes.clone());
        }
        let (cache, key, source) = (cache.clone(), key.clone(), entry.clone());
        self.job(&entry.body(), encoding, move |work| async move {
            // Another job may have stored it just before this one started.
            let current = cache.get(&key).await;
            let stored = current.filter(|c| c.same_body(&source));
            if let Some(bytes) = stored.as_ref().and_then(|c| c.variant(encoding)) {
                return Some(bytes.clone());
            }
            let bytes = work.compress(source.body(), encoding).await?;
            cache
                .add_variant(&key, &source, encoding, bytes.clone())
                .await;
            Some(bytes)
        })
        .await
    }

    /// `body` in `encoding`, for an answer that is not stored (made once for the callers
    /// that ask at once); `None` as for [`Compressor::stored`].
    pub async fn transient(&self, body: &Bytes, encoding: Encoding) -> Option<Bytes> {
        let body = body.clone();
        self.job(&body.clone(), encoding, move |work| async move {
            work.compress(body, encoding).await
        })
        .await
    }

    /// Joins the job for `body` in `encoding`, or starts it with `make` (in a task of its
    /// own, holding a permit) when none is running; `None` when it cannot start or did
    /// not finish.
    async fn job<F, Fut>(&self, body: &Bytes, encoding: Encoding, make: F) -> Option<Bytes>
    where
        F: FnOnce(Work) -> Fut,
        Fut: Future<Output = Option<Bytes>> + Send + 'static,
    {
        let job = (body.as_ptr() as usize, body.len(), encoding);
        let mut running = {
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            match jobs.get(&job) {
                Some(running) => running.clone(),
                None => {
                    let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                        self.metrics.skipped(Skipped::Busy);
                        return None;
                    };
                    let (done, running) = watch::channel(None);
                    jobs.insert(job, running.clone());
                    let work = make(Work {
                        levels: self.levels,
                        metrics: self.metrics.clone(),
                    });
                    // The body stays allocated until the job has left the map, so no
                    // other body can be taken for it.
                    let held = body.clone();
                    let jobs = self.jobs.clone();
                    let watched = running.clone();
                    tokio::spawn(async move {
                        let _held = held;
                        let _left = LeaveMap {
                            jobs,
                            job,
                            running: watched,
                        };
                        let bytes = work.await;
                        drop(permit);
                        done.send_replace(Some(bytes));
                    });
                    running
                }
            }
        };
        // `Err`: the task was dropped unfinished; `None` inside: the blocking
        // compression was cancelled (both only while the runtime shuts down).
        let bytes = match running.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().flatten(),
            Err(_) => None,
        };
        if bytes.is_none() {
            self.metrics.skipped(Skipped::Failed);
        }
        bytes
    }
}

/// What a job needs to compress, moved into its task.
struct Work {
    levels: Levels,
    metrics: CompressionMetrics,
}

impl Work {
    /// Compresses one body, counted; on the blocking pool past what takes a worker about
    /// a millisecond at the configured level. `None`: cancelled (runtime shutting down).
    async fn compress(&self, body: Bytes, encoding: Encoding) -> Option<Bytes> {
        self.metrics.compressed(encoding);
        let levels = self.levels;
        if body.len() <= levels.inline_bytes(encoding) {
            return Some(codec::compress(encoding, &body, levels));
        }
        tokio::task::spawn_blocking(move || codec::compress(encoding, &body, levels))
            .await
            .ok()
    }
}

/// Takes a finished (or dropped) job out of the map: only that job's channel, a newer job
/// for the same key stays.
struct LeaveMap {
    jobs: Jobs,
    job: Job,
    running: watch::Receiver<Outcome>,
}

impl Drop for LeaveMap {
    fn drop(&mut self) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if jobs
            .get(&self.job)
            .is_some_and(|r| r.same_channel(&self.running))
        {
            jobs.remove(&self.job);
        }
    }
}

/// Adds `Vary: Accept-Encoding` (beside any other `Vary`, see [`append_vary`]), and
/// `Content-Encoding` when `encoding` is set.
pub fn mark(headers: &mut http::HeaderMap, encoding: Option<Encoding>) {
    append_vary(headers, "Accept-Encoding");
    if let Some(encoding) = encoding {
        headers.insert(http::header::CONTENT_ENCODING, encoding.header_value());
    }
}

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
use tokio::sync::OnceCell;

use crate::cache::{CachedResponse, ResponseCache};
use crate::config::CompressionConfig;
use crate::key::CacheKey;
use crate::metrics::CompressionMetrics;
use crate::response::append_vary;

/// Bodies larger than this are compressed or decoded on tokio's blocking pool, not on a
/// runtime worker: brotli at quality 5 takes ~1 ms per 64 KiB (measured), about the
/// longest a worker should be kept from its other connections.
pub const BLOCKING_BYTES: usize = 64 * 1024;

/// One compression in progress: the body (by its allocation) and the encoding.
type Job = (usize, usize, Encoding);

/// Makes compressed variants, once per body and encoding at a time.
pub struct Compressor {
    enabled: bool,
    min_bytes: usize,
    levels: Levels,
    /// Compressions in progress; each caller of the same job awaits the same cell.
    jobs: Mutex<HashMap<Job, Arc<OnceCell<Bytes>>>>,
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
            jobs: Mutex::default(),
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
    /// stored.
    pub async fn stored(
        &self,
        cache: &ResponseCache,
        key: &CacheKey,
        entry: &CachedResponse,
        encoding: Encoding,
    ) -> Bytes {
        if let Some(bytes) = entry.variant(encoding) {
            return bytes.clone();
        }
        self.once(&entry.body, encoding, async {
            // Another caller may have stored it just before this one started the job.
            let current = cache.get(key).await;
            let stored = current.filter(|c| c.has_body(&entry.body));
            if let Some(bytes) = stored.as_ref().and_then(|c| c.variant(encoding)) {
                return bytes.clone();
            }
            let bytes = self.compress(entry.body.clone(), encoding).await;
            cache.add_variant(key, entry, encoding, bytes.clone()).await;
            bytes
        })
        .await
    }

    /// `body` in `encoding`, for an answer that is not stored (made once for the callers
    /// that ask at once).
    pub async fn transient(&self, body: &Bytes, encoding: Encoding) -> Bytes {
        self.once(body, encoding, self.compress(body.clone(), encoding))
            .await
    }

    /// Runs `make` for the first caller of `body` in `encoding`; concurrent callers
    /// await its result. If that caller goes away, the next one takes over.
    async fn once(
        &self,
        body: &Bytes,
        encoding: Encoding,
        make: impl Future<Output = Bytes>,
    ) -> Bytes {
        let job = (body.as_ptr() as usize, body.len(), encoding);
        let cell = {
            let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
            jobs.entry(job).or_default().clone()
        };
        // Done (or given up): later callers find the stored variant, or start over.
        let _done = JobDone {
            jobs: &self.jobs,
            job,
            cell: &cell,
        };
        cell.get_or_init(|| make).await.clone()
    }

    /// Compresses one body, counted; on the blocking pool when it is large.
    async fn compress(&self, body: Bytes, encoding: Encoding) -> Bytes {
        self.metrics.compressed(encoding);
        let levels = self.levels;
        if body.len() <= BLOCKING_BYTES {
            return codec::compress(encoding, &body, levels);
        }
        tokio::task::spawn_blocking(move || codec::compress(encoding, &body, levels))
            .await
            .expect("compression does not panic")
    }
}

/// Takes a job out of the map when its caller is done with it (only that job's cell:
/// a newer job for the same key stays).
struct JobDone<'a> {
    jobs: &'a Mutex<HashMap<Job, Arc<OnceCell<Bytes>>>>,
    job: Job,
    cell: &'a Arc<OnceCell<Bytes>>,
}

impl Drop for JobDone<'_> {
    fn drop(&mut self) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        // Kept while a caller may still finish it (one that gives up mid-way hands the
        // job to the next; the map and this caller are the last two holders otherwise).
        let finished = self.cell.initialized() || Arc::strong_count(self.cell) <= 2;
        if finished
            && jobs
                .get(&self.job)
                .is_some_and(|c| Arc::ptr_eq(c, self.cell))
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

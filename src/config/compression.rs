//! `[compression]`: compressed answers to clients, and compressed answers asked of the
//! upstream.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use super::validate::range;

/// `[compression]`. Fixed at start: a SIGHUP does not change it (stored variants were
/// made with these levels).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    /// Compress cached answers (`gzip`, `br`) for clients whose `Accept-Encoding` asks.
    pub enabled: bool,
    /// Answers smaller than this are sent uncompressed (unless the client refuses
    /// identity): a typical evaluation (~300 bytes) gains a few dozen bytes, less than a
    /// TCP segment, while flag configurations (tens to hundreds of KB) shrink 10x.
    pub min_bytes: usize,
    /// gzip level, 1 (fastest) to 9 (smallest).
    pub gzip_level: u32,
    /// brotli quality, 0 (fastest) to 11 (smallest).
    pub brotli_quality: u32,
    /// Ask an HTTP(S) upstream for gzip (`Accept-Encoding: gzip` on cache fills), to save
    /// bandwidth; its answer is decoded (and its gzip body kept as the stored gzip
    /// variant) whatever coding comes back.
    pub upstream_gzip: bool,
    /// Compressions running at once (each one body in one encoding, on the blocking pool
    /// when large); past it an answer goes out uncompressed (compression is optional),
    /// counted, and the next request for it compresses it. Bounds the CPU a burst of
    /// first requests takes, for instance after a purge of everything.
    pub max_concurrent: usize,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            enabled: true,
            min_bytes: 1024,
            gzip_level: 6,
            brotli_quality: 5,
            upstream_gzip: true,
            max_concurrent: 4,
        }
    }
}

impl CompressionConfig {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        range(
            "compression.min_bytes",
            self.min_bytes as u64,
            0,
            64 * 1024 * 1024,
        )?;
        range("compression.gzip_level", u64::from(self.gzip_level), 1, 9)?;
        range(
            "compression.brotli_quality",
            u64::from(self.brotli_quality),
            0,
            11,
        )?;
        range(
            "compression.max_concurrent",
            self.max_concurrent as u64,
            1,
            1024,
        )
    }
}

//! Compression: answers compressed (once per stored entry and encoding, or per answer
//! that is not stored), and upstream bodies decoded by their content coding.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

use super::labels::{family, one_label};
use crate::compression::{Coding, Encoding};

/// `encoding` label values, in [`Encoding::ALL`] order.
const ENCODINGS: [&str; 2] = ["gzip", "br"];
/// `coding` label values: [`Coding::ALL`], then codings relayed undecoded.
const CODINGS: [&str; 4] = ["gzip", "br", "deflate", "unknown"];

/// Handles on the compression metrics; cheap to clone. The default is unregistered.
#[derive(Clone, Default)]
pub struct CompressionMetrics {
    compressions: [Counter; ENCODINGS.len()],
    decoded: [Counter; CODINGS.len()],
    refused: [Counter; CODINGS.len()],
    skipped: [Counter; SKIPPED.len()],
}

/// `reason` label values of answers served identity although the client accepted an
/// encoding: `busy` (`compression.max_concurrent` compressions running), `failed` (the
/// compression did not finish: cancelled at shutdown).
const SKIPPED: [&str; 2] = ["busy", "failed"];

/// Why an answer that could have been compressed went out in identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skipped {
    Busy,
    Failed,
}

impl CompressionMetrics {
    pub(super) fn register(registry: &mut Registry) -> CompressionMetrics {
        let compressions = family(
            registry,
            "compressions",
            "Answers compressed, by encoding (a stored answer once per encoding)",
            one_label("encoding", ENCODINGS),
        );
        let decoded = family(
            registry,
            "upstream_decoded",
            "Upstream bodies by content coding: decoded (gzip, br, deflate), or relayed \
             undecoded and not stored (unknown)",
            one_label("coding", CODINGS),
        );
        let refused = family(
            registry,
            "upstream_decode_refused",
            "Upstream bodies refused: larger than upstream.max_response_bytes once \
             decoded, or not valid in their coding",
            one_label("coding", CODINGS),
        );
        let skipped = family(
            registry,
            "compressions_skipped",
            "Answers served uncompressed to a client that accepted gzip or br: busy \
             (compression.max_concurrent reached), failed (cancelled at shutdown)",
            one_label("reason", SKIPPED),
        );
        CompressionMetrics {
            skipped,
            compressions,
            decoded,
            refused,
        }
    }

    /// One answer compressed in `encoding`.
    pub fn compressed(&self, encoding: Encoding) {
        let at = Encoding::ALL.iter().position(|e| *e == encoding);
        self.compressions[at.unwrap_or(0)].inc();
    }

    /// Compressions so far in `encoding`.
    pub fn compressions(&self, encoding: Encoding) -> u64 {
        let at = Encoding::ALL.iter().position(|e| *e == encoding);
        self.compressions[at.unwrap_or(0)].get()
    }

    /// One answer served in identity instead of compressed, for `reason`.
    pub fn skipped(&self, reason: Skipped) {
        self.skipped[reason as usize].inc();
    }

    /// Answers served in identity instead of compressed, for `reason`, so far.
    pub fn skips(&self, reason: Skipped) -> u64 {
        self.skipped[reason as usize].get()
    }

    /// One upstream body decoded from `coding`, `None`: an unknown one relayed.
    pub fn decoded(&self, coding: Option<Coding>) {
        self.decoded[coding_index(coding)].inc();
    }

    /// One upstream body in `coding` refused.
    pub fn refused(&self, coding: Coding) {
        self.refused[coding_index(Some(coding))].inc();
    }
}

fn coding_index(coding: Option<Coding>) -> usize {
    match coding {
        Some(c) => Coding::ALL.iter().position(|k| *k == c).unwrap_or(0),
        None => CODINGS.len() - 1,
    }
}

//! The cache's two segments apart ([`crate::cache::SegmentCounts`]), read at each scrape:
//! flag configurations and answers each have a byte bound of their own
//! (`cache.flags_percent`), so an operator can see which one is full and evicting.

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::labels::Labels;
use crate::cache::{CacheCounts, SegmentCounts};

/// `segment` label values, in this order.
pub(super) const SEGMENTS: [&str; 2] = ["answers", "flags"];

/// Entries, weighted bytes and capacity per segment.
#[derive(Clone, Default)]
pub struct SegmentMetrics {
    entries: [Gauge; 2],
    weighted: [Gauge; 2],
    capacity: [Gauge; 2],
}

impl SegmentMetrics {
    pub(super) fn register(registry: &mut Registry) -> SegmentMetrics {
        let mut family = |name: &str, help: &str| {
            let family = Family::<Labels, Gauge>::default();
            registry.register(name, help, family.clone());
            SEGMENTS.map(|s| family.get_or_create_owned(&vec![("segment", s)]))
        };
        SegmentMetrics {
            entries: family(
                "cache_segment_entries",
                "Entries in each segment of the response cache",
            ),
            weighted: family(
                "cache_segment_weighted_bytes",
                "Weighted bytes in each segment of the response cache",
            ),
            capacity: family(
                "cache_segment_capacity_bytes",
                "Each segment's byte bound (cache.flags_percent of cache.max_bytes for flags, the rest for answers)",
            ),
        }
    }

    pub(super) fn observe(&self, counts: &CacheCounts) {
        let set = |g: &Gauge, v: u64| g.set(i64::try_from(v).unwrap_or(i64::MAX));
        let segments: [&SegmentCounts; 2] = [&counts.answers, &counts.flags];
        for (i, segment) in segments.iter().enumerate() {
            set(&self.entries[i], segment.entries);
            set(&self.weighted[i], segment.weighted_bytes);
            set(&self.capacity[i], segment.capacity_bytes);
        }
    }
}

//! The process's memory ([`crate::memory`]), read at each scrape: its resident set and,
//! on jemalloc, the bytes allocated and the pages the allocator holds.

use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::memory::MemoryStats;

/// Gauges of the process's memory; the allocator's exist only when its counts are known.
#[derive(Clone, Default)]
pub struct MemoryMetrics {
    resident: Gauge,
    allocated: Option<Gauge>,
    allocator_resident: Option<Gauge>,
}

impl MemoryMetrics {
    pub(super) fn register(registry: &mut Registry) -> MemoryMetrics {
        let mut gauge = |name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let resident = gauge(
            "memory_resident_bytes",
            "Resident set of the process (VmRSS), read at each scrape",
        );
        let with_allocator = crate::memory::stats().allocator.is_some();
        let allocated = with_allocator.then(|| {
            gauge(
                "memory_allocated_bytes",
                "Bytes in live allocations, as the allocator (jemalloc) counts them",
            )
        });
        let allocator_resident = with_allocator.then(|| {
            gauge(
                "memory_allocator_resident_bytes",
                "Bytes in pages the allocator (jemalloc) holds resident, its metadata included",
            )
        });
        MemoryMetrics {
            resident,
            allocated,
            allocator_resident,
        }
    }

    pub(super) fn observe(&self, stats: &MemoryStats) {
        let set = |g: &Gauge, v: Option<u64>| {
            if let Some(v) = v {
                g.set(i64::try_from(v).unwrap_or(i64::MAX));
            }
        };
        set(&self.resident, stats.resident_bytes);
        if let Some(g) = &self.allocated {
            set(g, stats.allocated_bytes);
        }
        if let Some(g) = &self.allocator_resident {
            set(g, stats.allocator_resident_bytes);
        }
    }
}

//! The process's memory, for `/metrics` and `/admin/stats`: its resident set as the kernel
//! counts it and, when the binary runs on jemalloc (the default build), the bytes the
//! allocator has handed out, so an operator can set `evalgate_cache_weighted_bytes`
//! beside what the process really holds (README, "Memory").

use std::sync::atomic::{AtomicBool, Ordering};

/// Set by the binary when jemalloc is its global allocator: only then are its statistics
/// the process's (a library user on another allocator would read an idle jemalloc).
static JEMALLOC: AtomicBool = AtomicBool::new(false);

/// Says that jemalloc is the process's global allocator (called by `main`).
pub fn set_jemalloc_is_global() {
    JEMALLOC.store(true, Ordering::Relaxed);
}

/// What the process holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryStats {
    /// `VmRSS` of `/proc/self/status`; `None` where there is no such file.
    pub resident_bytes: Option<u64>,
    /// The allocator, when its counts are known: `"jemalloc"`.
    pub allocator: Option<&'static str>,
    /// Bytes in live allocations (jemalloc's `stats.allocated`).
    pub allocated_bytes: Option<u64>,
    /// Bytes in pages the allocator holds resident, its own metadata included
    /// (jemalloc's `stats.resident`).
    pub allocator_resident_bytes: Option<u64>,
}

/// Reads the counts; a few microseconds (a small procfs read and, with jemalloc, a
/// refresh of its statistics), meant for scrapes.
pub fn stats() -> MemoryStats {
    let mut stats = MemoryStats {
        resident_bytes: resident_bytes(),
        ..MemoryStats::default()
    };
    if JEMALLOC.load(Ordering::Relaxed) {
        allocator_stats(&mut stats);
    }
    stats
}

#[cfg(feature = "jemalloc")]
fn allocator_stats(stats: &mut MemoryStats) {
    use tikv_jemalloc_ctl::{epoch, stats as je};
    if epoch::advance().is_err() {
        return;
    }
    stats.allocator = Some("jemalloc");
    stats.allocated_bytes = je::allocated::read().ok().map(|n| n as u64);
    stats.allocator_resident_bytes = je::resident::read().ok().map(|n| n as u64);
}

#[cfg(not(feature = "jemalloc"))]
fn allocator_stats(_: &mut MemoryStats) {}

fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    parse_vm_rss(&status)
}

/// `VmRSS:   123456 kB` → bytes.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tevalgate\nVmPeak:\t  200 kB\nVmRSS:\t   51234 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(51234 * 1024));
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        let stats = stats();
        assert!(stats.resident_bytes.is_some_and(|n| n > 0), "{stats:?}");
    }
}

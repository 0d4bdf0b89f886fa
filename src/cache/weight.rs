//! What an entry really costs in memory, for the cache's weigher: its allocations as the
//! allocator rounds them, and moka's own per-entry structures, so that `cache.max_bytes`
//! bounds the memory the cache takes, not just its payload.
//!
//! The sizes are jemalloc's (evalgate's allocator, `Cargo.toml` feature `jemalloc`); with
//! another allocator they are close but not exact. `tests/memory_accounting.rs` measures
//! the estimate against jemalloc's own count of allocated bytes and fails when they drift
//! apart by more than [`MARGIN_PERCENT`].

/// How far the weight may be from the measured cost, in percent of the measured cost
/// (`tests/memory_accounting.rs`; README, "Memory").
pub const MARGIN_PERCENT: u64 = 10;

/// moka's structures per entry besides the one holding the value (measured with jemalloc
/// for moka 0.12 without per-entry expiry or invalidation closures, as the cache is built:
/// each would add a queue node, 80 bytes for both): the map's bucket, the `Arc` around the
/// key handle, the entry's info, its access-order node and its lock, and the entry's share
/// of the map's table (two slots of 8 bytes at most half full).
pub const MOKA_PER_ENTRY: usize = 192 + 16;

/// moka's allocation holding a value of `value_size` bytes: its count and two pointers.
pub fn moka_value_entry(value_size: usize) -> usize {
    allocation(8 + value_size + 16)
}

/// The bytes jemalloc hands out for a request of `n`: its size classes are multiples of
/// 16 up to 128, then four per doubling (160, 192, 224, 256, 320, …, 1280, 1536, …).
pub fn allocation(n: usize) -> usize {
    match n {
        0 => 0,
        1..=8 => 8,
        9..=128 => n.next_multiple_of(16),
        _ => {
            let group = usize::BITS - 1 - (n - 1).leading_zeros();
            n.next_multiple_of(1 << (group - 2))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::allocation;

    #[test]
    fn sizes_round_to_jemallocs_classes() {
        let cases = [
            (1, 8),
            (8, 8),
            (9, 16),
            (17, 32),
            (100, 112),
            (128, 128),
            (129, 160),
            (256, 256),
            (257, 320),
            (288, 320),
            (321, 384),
            (513, 640),
            (1025, 1280),
            (4097, 5120),
            (1 << 20, 1 << 20),
            ((1 << 20) + 1, (1 << 20) + (1 << 18)),
        ];
        for (n, class) in cases {
            assert_eq!(allocation(n), class, "{n}");
        }
    }
}

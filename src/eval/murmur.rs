//! MurmurHash3 x86_32, the hash behind every bucketing decision.
//!
//! Amplitude hashes the UTF-8 bytes of `salt/value` and reads the result as an unsigned
//! 32-bit number; every port must agree bit for bit or users change buckets.

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

/// Hashes `data` with MurmurHash3 x86_32 and the given seed (Amplitude uses 0).
pub fn hash32(data: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        h ^= scramble(k);
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k = 0u32;
        for (i, &b) in tail.iter().enumerate() {
            k |= u32::from(b) << (8 * i);
        }
        h ^= scramble(k);
    }
    // The length is mixed in modulo 2^32, as the reference implementation does.
    h ^= data.len() as u32;
    fmix(h)
}

fn scramble(k: u32) -> u32 {
    k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2)
}

/// The finalizer: forces every input bit to affect every output bit.
fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

#[cfg(test)]
mod tests {
    use super::hash32;

    #[test]
    fn amplitude_vectors_seed_zero() {
        assert_eq!(
            hash32("My hovercraft is full of eels.".as_bytes(), 0),
            2_953_494_853
        );
        assert_eq!(hash32("My 🚀 is full of 🦎.".as_bytes(), 0), 1_818_098_979);
        assert_eq!(hash32("吉 星 高 照".as_bytes(), 0), 3_435_142_074);
    }

    #[test]
    fn amplitude_vector_with_seed() {
        assert_eq!(hash32(b"brian", 0x7f3a_21ea), 3_948_467_465);
    }

    #[test]
    fn every_tail_length() {
        // Reference values from the JS engine's hash32x86 (seed 0).
        assert_eq!(hash32(b"", 0), 0);
        assert_eq!(hash32(b"a", 0), 1_009_084_850);
        assert_eq!(hash32(b"ab", 0), 2_613_040_991);
        assert_eq!(hash32(b"abc", 0), 3_017_643_002);
        assert_eq!(hash32(b"abcd", 0), 1_139_631_978);
    }
}

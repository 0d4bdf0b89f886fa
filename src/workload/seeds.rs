//! Independent random streams from one `--seed`: ChaCha8, a portable generator whose
//! output is fixed for a key, so a seed gives the same workload on every platform.
//!
//! Each concern draws from its own key (seed and [`Domain`]), and each user and each
//! group from its own stream of that key, so a user's properties depend only on (seed,
//! user index), never on which requests came before.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What a stream is for.
#[derive(Debug, Clone, Copy)]
pub enum Domain {
    /// The request sequence: who asks, on which endpoint, for what.
    Requests,
    /// One user's properties (stream = user index).
    User,
    /// One company's group properties (stream = company number).
    Group,
}

/// The stream `stream` of `domain` for `seed`.
pub fn rng(seed: u64, domain: Domain, stream: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8] = domain as u8 + 1;
    key[9..24].copy_from_slice(b"evalgate-worklo");
    let mut r = ChaCha8Rng::from_seed(key);
    r.set_stream(stream);
    r
}

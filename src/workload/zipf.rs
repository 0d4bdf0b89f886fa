//! Zipf-distributed user popularity by an explicit inverse-CDF table.
//!
//! Rank `k` (1-based) of `n` is drawn with probability `k^-s / H(n, s)`. The table holds
//! the cumulative probabilities (8 bytes per rank, so `--users` is bounded) and a draw is
//! one uniform number and a binary search. Chosen over `rand_distr::Zipf` because the
//! probabilities are then exact, so a test can check them rank by rank, and because the
//! output then depends only on the uniform stream: byte-identical workloads for a seed
//! survive an upgrade of a sampling crate.

/// Cumulative rank probabilities; `cdf[k - 1]` is P(rank ≤ k), the last one exactly 1.
#[derive(Debug, Clone)]
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// `n` ranks (at least 1) with exponent `s` (finite, ≥ 0; 0 is uniform).
    pub fn new(n: u64, s: f64) -> Zipf {
        let n = usize::try_from(n.max(1)).expect("rank count fits in memory");
        let mut cdf = Vec::with_capacity(n);
        let mut total = 0.0;
        for k in 1..=n {
            total += (k as f64).powf(-s);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        if let Some(last) = cdf.last_mut() {
            *last = 1.0;
        }
        Zipf { cdf }
    }

    /// The probability of rank `k` (1-based).
    pub fn probability(&self, k: usize) -> f64 {
        let below = if k >= 2 { self.cdf[k - 2] } else { 0.0 };
        self.cdf[k - 1] - below
    }

    /// The 0-based rank a uniform `u` in [0, 1) falls on.
    pub fn rank(&self, u: f64) -> u64 {
        let i = self.cdf.partition_point(|&c| c <= u);
        i.min(self.cdf.len() - 1) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_follow_the_power_law() {
        let z = Zipf::new(1000, 1.0);
        let h: f64 = (1..=1000).map(|k| 1.0 / k as f64).sum();
        for k in [1, 2, 10, 1000] {
            let want = 1.0 / (k as f64 * h);
            assert!((z.probability(k) - want).abs() < 1e-12, "rank {k}");
        }
        assert!((z.probability(1) / z.probability(2) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn draws_map_to_ranks_by_the_cdf() {
        let z = Zipf::new(4, 0.0);
        assert_eq!(z.rank(0.0), 0);
        assert_eq!(z.rank(0.249), 0);
        assert_eq!(z.rank(0.25), 1);
        assert_eq!(z.rank(0.99), 3);
        assert_eq!(z.rank(1.0), 3, "never past the last rank");
        assert_eq!(Zipf::new(1, 2.0).rank(0.7), 0);
    }
}

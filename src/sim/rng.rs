//! Randomness of the synthetic market: a seeded [`fastrand::Rng`] with the
//! few draws the market needs ([`Draw`]), and [`mix`], the hash that derives
//! seeds and tags from one another.
//!
//! Everything random in the simulator comes from a generator seeded here, so
//! a market is a function of its seeds only (the configuration's `seed`, a
//! shared market's seed and the simulator's slot in it).

/// A generator seeded with `seed`: the same seed gives the same draws.
pub(crate) fn seeded(seed: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(seed)
}

/// splitmix64 finaliser: a hash of `x` (not a generator), used to derive
/// seeds and identifiers deterministically from other seeds and numbers.
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The draws the market makes, over [`fastrand::Rng`].
pub(crate) trait Draw {
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64;
    /// Uniform integer in `[lo, hi]` (`lo` when `hi <= lo`).
    fn range(&mut self, lo: u64, hi: u64) -> u64;
    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool;
    /// About standard normal (mean 0, variance 1), bounded to ±3.47: the sum
    /// of four uniforms (Irwin–Hall), rescaled.
    fn normal(&mut self) -> f64;
}

impl Draw for fastrand::Rng {
    fn unit(&mut self) -> f64 {
        self.f64()
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        self.u64(lo..=hi)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn normal(&mut self) -> f64 {
        let sum: f64 = (0..4).map(|_| self.unit()).sum();
        (sum - 2.0) * 3f64.sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_deterministic_and_in_range() {
        let (mut a, mut b) = (seeded(7), seeded(7));
        for _ in 0..1_000 {
            let x = a.unit();
            assert_eq!(x.to_bits(), b.unit().to_bits());
            assert!((0.0..1.0).contains(&x));
            let r = a.range(3, 5);
            assert_eq!(r, b.range(3, 5));
            assert!((3..=5).contains(&r));
            assert!(a.normal().abs() <= 3.47);
            b.normal();
        }
        assert_eq!(a.range(9, 2), 9);
        assert_ne!(mix(1), mix(2));
    }
}

//! Reconnect policy: exponential backoff with jitter, reset after a productive session, and a
//! circuit breaker. Pure: the caller supplies randomness and acts on the returned decision.

use std::time::Duration;

use crate::config::{Jitter, ReconnectConfig};

/// A source of random numbers, injectable for tests.
pub trait RandomSource {
    /// A uniformly distributed 64-bit value.
    fn next_u64(&mut self) -> u64;
}

/// The one random-number generator of the project (`fastrand`'s wyrand): seeded from the clock
/// per feed in production, from a fixed seed in tests and benches.
impl RandomSource for fastrand::Rng {
    fn next_u64(&mut self) -> u64 {
        self.u64(..)
    }
}

/// What to do after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Wait `delay`, then try again.
    Retry {
        /// The wait, jitter applied.
        delay: Duration,
        /// Consecutive failures so far (1 for the first).
        failures: u32,
    },
    /// Too many failures in a row: wait `cooldown`, then try again.
    CircuitOpen {
        /// The breaker's cooldown.
        cooldown: Duration,
        /// Consecutive failures so far.
        failures: u32,
    },
}

impl Decision {
    /// How long to wait.
    pub fn wait(self) -> Duration {
        match self {
            Decision::Retry { delay, .. } => delay,
            Decision::CircuitOpen { cooldown, .. } => cooldown,
        }
    }
}

/// Backoff and breaker state of one connection.
#[derive(Clone, Debug)]
pub struct Backoff {
    cfg: ReconnectConfig,
    /// Failures since the last productive session.
    failures: u32,
}

impl Backoff {
    /// A fresh policy.
    pub fn new(cfg: ReconnectConfig) -> Self {
        Backoff { cfg, failures: 0 }
    }

    /// Consecutive failures since the last productive session.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A session delivered data: the next failure starts from the initial delay again.
    pub fn on_productive(&mut self) {
        self.failures = 0;
    }

    /// A connection attempt failed or a session ended; decides the wait before the next try.
    ///
    /// The breaker opens when the count reaches `max_consecutive_failures` and stays "half
    /// open" after its cooldown: each further failure reopens it, until a productive session
    /// resets the count.
    pub fn on_failure(&mut self, rng: &mut impl RandomSource) -> Decision {
        self.failures = self.failures.saturating_add(1);
        if self.failures >= self.cfg.max_consecutive_failures {
            return Decision::CircuitOpen {
                cooldown: Duration::from_millis(self.cfg.circuit_breaker_cooldown_ms),
                failures: self.failures,
            };
        }
        let exp = self
            .cfg
            .backoff_multiplier
            .powi(self.failures.saturating_sub(1).min(64) as i32);
        let raw = (self.cfg.initial_delay_ms as f64 * exp).min(self.cfg.max_delay_ms as f64);
        let ceiling = raw as u64;
        let ms = match self.cfg.jitter {
            Jitter::None => ceiling,
            Jitter::Full => rng.next_u64() % (ceiling + 1),
            Jitter::Equal => ceiling / 2 + rng.next_u64() % (ceiling - ceiling / 2 + 1),
        };
        Decision::Retry {
            delay: Duration::from_millis(ms),
            failures: self.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns a fixed sequence, so jitter is predictable.
    struct Fixed(Vec<u64>, usize);
    impl RandomSource for Fixed {
        fn next_u64(&mut self) -> u64 {
            self.1 += 1;
            self.0[(self.1 - 1) % self.0.len()]
        }
    }

    fn cfg(jitter: Jitter) -> ReconnectConfig {
        ReconnectConfig {
            initial_delay_ms: 100,
            max_delay_ms: 1000,
            backoff_multiplier: 2.0,
            jitter,
            max_consecutive_failures: 6,
            circuit_breaker_cooldown_ms: 4000,
            ..ReconnectConfig::default()
        }
    }

    fn delays(b: &mut Backoff, rng: &mut impl RandomSource, n: usize) -> Vec<u64> {
        (0..n)
            .map(|_| b.on_failure(rng).wait().as_millis() as u64)
            .collect()
    }

    #[test]
    fn grows_exponentially_to_the_cap() {
        let mut b = Backoff::new(cfg(Jitter::None));
        assert_eq!(
            delays(&mut b, &mut fastrand::Rng::with_seed(1), 5),
            vec![100, 200, 400, 800, 1000]
        );
    }

    #[test]
    fn jitter_stays_within_its_bounds() {
        for (jitter, lo_frac) in [(Jitter::Full, 0.0), (Jitter::Equal, 0.5)] {
            let mut rng = fastrand::Rng::with_seed(42);
            for _ in 0..200 {
                let mut b = Backoff::new(cfg(jitter));
                for (i, d) in delays(&mut b, &mut rng, 5).into_iter().enumerate() {
                    let ceiling = (100u64 << i).min(1000);
                    assert!(d <= ceiling, "{jitter:?} attempt {i}: {d} > {ceiling}");
                    assert!(
                        d as f64 >= ceiling as f64 * lo_frac - 1.0,
                        "{jitter:?}: {d} too low"
                    );
                }
            }
        }
        // The extremes are reachable: random 0 gives the floor, a large value the ceiling.
        let mut b = Backoff::new(cfg(Jitter::Equal));
        assert_eq!(
            b.on_failure(&mut Fixed(vec![0], 0)).wait(),
            Duration::from_millis(50)
        );
        let mut b = Backoff::new(cfg(Jitter::Full));
        assert_eq!(
            b.on_failure(&mut Fixed(vec![100], 0)).wait(),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn resets_only_after_a_productive_session() {
        let mut b = Backoff::new(cfg(Jitter::None));
        let mut rng = fastrand::Rng::with_seed(7);
        assert_eq!(delays(&mut b, &mut rng, 3), vec![100, 200, 400]);
        // A connection that opened and died without data does not reset: the delay keeps growing.
        assert_eq!(delays(&mut b, &mut rng, 1), vec![800]);
        b.on_productive();
        assert_eq!(delays(&mut b, &mut rng, 2), vec![100, 200]);
    }

    #[test]
    fn circuit_opens_after_max_failures_and_reopens_until_productive() {
        let mut b = Backoff::new(cfg(Jitter::None));
        let mut rng = fastrand::Rng::with_seed(7);
        let decisions: Vec<Decision> = (0..7).map(|_| b.on_failure(&mut rng)).collect();
        assert!(decisions[..5]
            .iter()
            .all(|d| matches!(d, Decision::Retry { .. })));
        assert_eq!(
            decisions[5],
            Decision::CircuitOpen {
                cooldown: Duration::from_millis(4000),
                failures: 6
            }
        );
        assert!(matches!(
            decisions[6],
            Decision::CircuitOpen { failures: 7, .. }
        ));
        b.on_productive();
        assert_eq!(
            b.on_failure(&mut rng),
            Decision::Retry {
                delay: Duration::from_millis(100),
                failures: 1
            }
        );
    }
}

//! Exponential backoff with full jitter, pure (randomness passed in).

use std::time::Duration;

use rand::Rng;

/// Reconnection delays: `min`, doubling up to `max`, each drawn uniformly
/// in `[d/2, d]` so that nodes that lost the same manager spread out.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Delays from `min` to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The next delay.
    pub fn next<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let exp = self.min.saturating_mul(1u32 << self.attempt.min(20));
        let ceiling = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + ceiling
            .saturating_sub(half)
            .mul_f64(rng.random_range(0.0..=1.0))
    }

    /// Back to the shortest delay (after a successful session).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..8).map(|_| b.next(&mut rng)).collect();
        let ceilings = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
        for (d, c) in delays.iter().zip(ceilings) {
            let c = Duration::from_millis(c);
            assert!(*d >= c / 2 && *d <= c, "{d:?} not in [{:?}, {c:?}]", c / 2);
        }
        b.reset();
        assert!(b.next(&mut rng) <= Duration::from_millis(100));
    }
}

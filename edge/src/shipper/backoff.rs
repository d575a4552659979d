//! Capped exponential backoff with jitter, reset on success. Sans-IO: the
//! jitter comes from a seeded generator the owner passes in, so a test
//! replays the same delays.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    /// Failures since the last success.
    failures: u32,
}

impl Backoff {
    pub const fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff { base, cap, failures: 0 }
    }

    /// The wait after one more failure: `base * 2^(failures so far)`, at
    /// most `cap`, then jittered into its upper half ("equal jitter"), so
    /// edges that lost the core together do not come back in step, and no
    /// wait is shorter than half its step (a failing peer is never hammered).
    pub fn fail(&mut self, rng: &mut fastrand::Rng) -> Duration {
        let step = self.base.saturating_mul(1u32.checked_shl(self.failures).unwrap_or(u32::MAX)).min(self.cap);
        self.failures = self.failures.saturating_add(1);
        step / 2 + step.mul_f64(rng.f64() / 2.0)
    }

    pub fn succeed(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn doubles_up_to_its_cap_jittered_into_the_upper_half_and_resets() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut b = Backoff::new(100 * MS, 1000 * MS);
        let steps = [100, 200, 400, 800, 1000, 1000, 1000];
        for step in steps {
            let d = b.fail(&mut rng);
            assert!(d >= step * MS / 2 && d <= step * MS, "{d:?} for step {step} ms");
        }
        assert_eq!(b.failures(), steps.len() as u32);
        b.succeed();
        let d = b.fail(&mut rng);
        assert!(d >= 50 * MS && d <= 100 * MS, "reset to the base step: {d:?}");
    }

    #[test]
    fn never_overflows_however_long_it_fails() {
        let mut rng = fastrand::Rng::with_seed(1);
        let mut b = Backoff::new(100 * MS, 10_000 * MS);
        for _ in 0..1000 {
            assert!(b.fail(&mut rng) <= 10_000 * MS);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let delays = |seed| {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut b = Backoff::new(100 * MS, 1000 * MS);
            (0..6).map(|_| b.fail(&mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(delays(3), delays(3));
        assert_ne!(delays(3), delays(4));
    }
}

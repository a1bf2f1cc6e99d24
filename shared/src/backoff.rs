//! The retry policy every worker uses for a dependency that failed (the database, the broker):
//! exponential from `initial`, doubling up to `max`, with ±20 % jitter so that a fleet of
//! workers does not retry in lock-step after an outage.

use std::time::Duration;

/// Exponential backoff with jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s.
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (1 for the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(20);
        let base = self
            .initial
            .saturating_mul(1u32 << exponent)
            .min(self.max)
            .as_secs_f64();
        // Cheap jitter without a random-number dependency: the low bits of the clock.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = 0.8 + 0.4 * f64::from(nanos % 1000) / 1000.0;
        Duration::from_secs_f64((base * jitter).min(self.max.as_secs_f64()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_ceiling_with_bounded_jitter() {
        let backoff = Backoff::default();
        let d1 = backoff.delay(1).as_secs_f64();
        assert!((0.08..=0.12).contains(&d1), "{d1}");
        let d3 = backoff.delay(3).as_secs_f64();
        assert!((0.32..=0.48).contains(&d3), "{d3}");
        for attempt in [7, 30, u32::MAX] {
            let d = backoff.delay(attempt);
            assert!(d <= backoff.max && d >= Duration::from_secs(4), "{d:?}");
        }
    }
}

//! Exponential backoff with full jitter.

use std::time::Duration;

/// How long to wait before each retry: exponential, capped, with full jitter.
///
/// The wait before retry n (1 for the first retry) is drawn uniformly from
/// `[0, min(max, base × 2^(n-1))]` ("full jitter"): callers that failed together do not
/// retry together, and on average they wait half as long as without jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// Waits of up to `base`, `2 × base`, `4 × base`, ... and never more than `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff { base, max }
    }

    /// No wait between attempts.
    pub fn none() -> Self {
        Backoff::new(Duration::ZERO, Duration::ZERO)
    }

    /// The longest wait before retry `retry` (1 for the first), before jitter.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry `retry`: uniform in `[0, ceiling(retry)]`.
    pub fn delay(&self, retry: u32) -> Duration {
        let ceiling = self.ceiling(retry).as_nanos() as u64;
        Duration::from_nanos(fastrand::u64(..=ceiling))
    }
}

impl Default for Backoff {
    /// 10 ms, doubling, at most 1 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(10), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap_and_delays_stay_under_them() {
        let b = Backoff::new(Duration::from_millis(10), Duration::from_millis(100));
        let ceilings: Vec<u64> = (1..=6).map(|n| b.ceiling(n).as_millis() as u64).collect();
        assert_eq!(ceilings, [10, 20, 40, 80, 100, 100]);
        assert_eq!(b.ceiling(200), Duration::from_millis(100));
        fastrand::seed(7);
        let delays: Vec<Duration> = (0..1000).map(|_| b.delay(3)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(40)));
        // Full jitter: spread over the whole range, not bunched at the top.
        assert!(delays.iter().any(|d| *d < Duration::from_millis(10)));
        assert!(delays.iter().any(|d| *d > Duration::from_millis(30)));
        assert_eq!(Backoff::none().delay(5), Duration::ZERO);
    }
}

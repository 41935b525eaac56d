//! A sliding window of two counters over time, in buckets: what a breaker's failure ratio and
//! a retry budget both count over "the last N seconds".

use std::time::Duration;

use tokio::time::Instant;

/// Two counters summed over the last `buckets × width` of time. Old buckets are cleared as
/// time moves on, so memory is fixed whatever the call rate.
#[derive(Debug)]
pub(crate) struct Window {
    buckets: Vec<[u64; 2]>,
    /// A bucket's width in nanoseconds: u64 arithmetic, as a u128 division costs more than
    /// the rest of a write (584 years of nanoseconds fit).
    width_ns: u64,
    base: Instant,
    /// The bucket epoch (time since `base` / `width`) last written.
    head: u64,
    /// When the head bucket ends: until then a write needs no division (most writes).
    head_end: Instant,
}

impl Window {
    /// A window of `span`, in `buckets` buckets (at least one, each at least a millisecond).
    pub(crate) fn new(span: Duration, buckets: usize, now: Instant) -> Self {
        let buckets = buckets.max(1);
        let width = (span / buckets as u32).max(Duration::from_millis(1));
        Window {
            buckets: vec![[0; 2]; buckets],
            width_ns: nanos(width),
            base: now,
            head: 0,
            head_end: now.checked_add(width).unwrap_or(now),
        }
    }

    fn advance(&mut self, now: Instant) -> usize {
        let len = self.buckets.len() as u64;
        if now < self.head_end {
            return (self.head % len) as usize;
        }
        let epoch = nanos(now.saturating_duration_since(self.base)) / self.width_ns;
        if epoch > self.head {
            // Clear every bucket time has passed over since the last write, at most all.
            let stale = (epoch - self.head).min(len);
            for step in 1..=stale {
                self.buckets[((self.head + step) % len) as usize] = [0; 2];
            }
            self.head = epoch;
            // Past the clock's range (centuries away) the division runs on every write.
            self.head_end = epoch
                .checked_add(1)
                .and_then(|next| next.checked_mul(self.width_ns))
                .and_then(|end| self.base.checked_add(Duration::from_nanos(end)))
                .unwrap_or(now);
        }
        (self.head % len) as usize
    }

    /// Adds `n` to counter `which` (0 or 1) at `now`.
    pub(crate) fn add(&mut self, now: Instant, which: usize, n: u64) {
        let i = self.advance(now);
        self.buckets[i][which] += n;
    }

    /// Both counters summed over the window ending at `now`.
    pub(crate) fn sums(&mut self, now: Instant) -> [u64; 2] {
        self.advance(now);
        self.buckets
            .iter()
            .fold([0, 0], |[a, b], [x, y]| [a + x, b + y])
    }

    /// Forgets everything.
    #[cfg(feature = "breaker")]
    pub(crate) fn clear(&mut self) {
        self.buckets.iter_mut().for_each(|b| *b = [0; 2]);
    }
}

/// `d` in nanoseconds, saturating at `u64::MAX`.
fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_leave_the_window_as_time_passes() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10), 10, t0);
        w.add(t0, 0, 3);
        w.add(t0 + Duration::from_millis(4_500), 1, 2);
        assert_eq!(w.sums(t0 + Duration::from_secs(9)), [3, 2]);
        // The first bucket (0..1 s) leaves at 10 s; the second write (4..5 s) at 14 s.
        assert_eq!(w.sums(t0 + Duration::from_secs(10)), [0, 2]);
        assert_eq!(w.sums(t0 + Duration::from_secs(14)), [0, 0]);
        // A long silence clears everything and the window works on.
        w.add(t0 + Duration::from_secs(1000), 0, 1);
        assert_eq!(w.sums(t0 + Duration::from_secs(1000)), [1, 0]);
    }

    #[test]
    fn a_write_at_a_bucket_end_goes_to_the_next_bucket() {
        let t0 = Instant::now();
        let mut w = Window::new(Duration::from_secs(10), 10, t0);
        let end = t0 + Duration::from_secs(1);
        w.add(end - Duration::from_nanos(1), 0, 1);
        w.add(end, 1, 1);
        assert_eq!(w.sums(end), [1, 1]);
        // Ten seconds on, the first bucket has left and the second has not.
        assert_eq!(w.sums(t0 + Duration::from_secs(10)), [0, 1]);
        assert_eq!(w.sums(t0 + Duration::from_secs(11)), [0, 0]);
    }
}

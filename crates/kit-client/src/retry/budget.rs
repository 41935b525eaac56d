//! The retry budget: retries capped at a share of recent calls plus a small floor.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::window::Window;

const DEPOSITS: usize = 0;
const WITHDRAWALS: usize = 1;

/// Caps retries at `ratio` of the calls made over the last `ttl`, plus `min_per_second × ttl`
/// so that a caller making few calls can still retry (Finagle's and linkerd's retry budget).
///
/// Each call deposits one call; each retry withdraws one. While the callee is healthy few
/// retries are wanted and the budget never binds; when it fails for everyone, every call wants
/// retries and the budget keeps the extra load to `ratio` (20% by default) instead of the
/// `max_attempts`-fold a fixed count would send into an outage.
///
/// Clones share one budget: give one budget to every [`Retry`](super::Retry) that calls one
/// service.
///
/// ```
/// use std::time::Duration;
/// use kit_client::retry::Budget;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // No floor, 10%: 100 calls allow 10 retries.
/// let budget = Budget::new(Duration::from_secs(10), 0, 0.1);
/// for _ in 0..100 {
///     budget.deposit();
/// }
/// let granted = (0..50).filter(|_| budget.withdraw()).count();
/// assert_eq!(granted, 10);
/// # }
/// ```
#[derive(Clone)]
pub struct Budget {
    window: Arc<Mutex<Window>>,
    floor: f64,
    ratio: f64,
}

impl Budget {
    /// Allows, over any `ttl`, `min_per_second × ttl` retries plus `ratio` (from 0 to 1, and
    /// clamped there) of the calls deposited. `ttl` is counted in ten buckets.
    pub fn new(ttl: Duration, min_per_second: u32, ratio: f64) -> Self {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        Budget {
            window: Arc::new(Mutex::new(Window::new(ttl, 10, Instant::now()))),
            floor: f64::from(min_per_second) * ttl.as_secs_f64(),
            ratio,
        }
    }

    /// Retries never allowed: every call gets one attempt.
    pub fn none() -> Self {
        Budget::new(Duration::from_secs(1), 0, 0.0)
    }

    /// Records a call.
    pub fn deposit(&self) {
        self.lock().add(crate::clock::now(), DEPOSITS, 1);
    }

    /// Takes one retry from the budget; `false` when it is spent.
    pub fn withdraw(&self) -> bool {
        let now = crate::clock::now();
        let mut window = self.lock();
        let [deposits, withdrawals] = window.sums(now);
        if (withdrawals + 1) as f64 > self.floor + self.ratio * deposits as f64 {
            return false;
        }
        window.add(now, WITHDRAWALS, 1);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Budget {
    /// 20% of the calls of the last 10 s, plus 10 retries per second.
    fn default() -> Self {
        Budget::new(Duration::from_secs(10), 10, 0.2)
    }
}

impl fmt::Debug for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budget")
            .field("floor", &self.floor)
            .field("ratio", &self.ratio)
            .finish_non_exhaustive()
    }
}

//! How a backend's loop waits after a failure: exponential, full jitter, capped, so that a
//! registry that is down is retried calmly and never in a tight loop.

use std::time::Duration;

use kit_client::retry::Backoff;

/// Consecutive failures of one loop, and the wait each calls for.
#[derive(Debug)]
pub(crate) struct Failures {
    backoff: Backoff,
    count: u32,
}

impl Failures {
    /// Waits of up to 100 ms, doubling, at most 3 s: a registry back from an outage is seen
    /// again within 3 s (plus a reconnection), well inside the 5 s a watcher is allowed to
    /// converge, while a client that keeps failing asks about once every 1.5 s on average.
    pub(crate) fn new() -> Self {
        Failures::with(Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(3),
        ))
    }

    pub(crate) fn with(backoff: Backoff) -> Self {
        Failures { backoff, count: 0 }
    }

    /// Counts a failure and waits before the next try. The wait is at least a millisecond
    /// even when the jitter draws zero, so no failure loops without yielding.
    pub(crate) async fn wait(&mut self) {
        self.count = self.count.saturating_add(1);
        let delay = self.backoff.delay(self.count).max(Duration::from_millis(1));
        tokio::time::sleep(delay).await;
    }

    /// A success: the next failure waits the least again.
    pub(crate) fn reset(&mut self) {
        self.count = 0;
    }
}

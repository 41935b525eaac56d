//! What a connection's service has done, for the connection's stream to read: whether an
//! answer it sees written is hyper's own (`automatic.rs`), whether the connection is waiting
//! for a request head (`head_deadline.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The requests a connection's service was called with, and those whose response it has not
/// yet produced. Atomic: an HTTP/2 connection's calls run on tasks of their own.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    made: AtomicU64,
    answering: AtomicU64,
}

impl Calls {
    /// Counts a call until the returned guard is dropped (its response produced, or the call
    /// abandoned).
    pub(crate) fn start(self: &Arc<Self>) -> CallGuard {
        self.made.fetch_add(1, Ordering::SeqCst);
        self.answering.fetch_add(1, Ordering::SeqCst);
        CallGuard(Arc::clone(self))
    }

    /// The calls made so far.
    pub(crate) fn made(&self) -> u64 {
        self.made.load(Ordering::SeqCst)
    }

    /// The calls whose response is not yet produced.
    pub(crate) fn answering(&self) -> u64 {
        self.answering.load(Ordering::SeqCst)
    }
}

/// A call in progress; see [`Calls::start`].
pub(crate) struct CallGuard(Arc<Calls>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0.answering.fetch_sub(1, Ordering::SeqCst);
    }
}

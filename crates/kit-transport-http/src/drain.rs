//! The graceful drain of a listener's connections: on shutdown each open connection is told to
//! finish its in-flight requests and close, and the listener waits until all have.
//!
//! Each connection has its own signal, so that polling a connection does not touch state shared
//! with the others (hyper-util's `GracefulShutdown` has every connection poll one shared watch
//! channel, a lock that all worker threads contend for on every request). The signal is the
//! listener's `closing` flag and the connection's own `AtomicWaker`, rather than a `Notify`: a
//! connection's task checks it on every wake-up (several per request), and a `Notify` waited on
//! takes its lock at each of them; the flag is written once, at shutdown, so reading it costs
//! no cache line passed between the cores.

use std::collections::HashMap;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::Notify;

#[derive(Default)]
struct Shared {
    closing: AtomicBool,
    open: AtomicUsize,
    next_id: AtomicU64,
    /// Each open connection's waker, woken when the drain starts.
    connections: Mutex<HashMap<u64, Arc<AtomicWaker>>>,
    all_closed: Notify,
}

/// The listener's side: registers connections, starts the drain, waits for it.
#[derive(Clone, Default)]
pub(crate) struct Drain {
    shared: Arc<Shared>,
}

/// A connection's side: held by its task, deregisters on drop.
pub(crate) struct Tracked {
    shared: Arc<Shared>,
    id: u64,
    waker: Arc<AtomicWaker>,
}

impl Drain {
    /// Registers a connection; call before spawning its task, so that a drain started later
    /// reaches it.
    pub(crate) fn track(&self) -> Tracked {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let waker = Arc::new(AtomicWaker::new());
        self.shared.open.fetch_add(1, Ordering::SeqCst);
        self.connections().insert(id, Arc::clone(&waker));
        Tracked {
            shared: Arc::clone(&self.shared),
            id,
            waker,
        }
    }

    fn connections(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<AtomicWaker>>> {
        self.shared
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells every open connection to finish and close, then waits until all have.
    pub(crate) async fn drain(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        for waker in self.connections().values() {
            waker.wake();
        }
        loop {
            let mut closed = pin!(self.shared.all_closed.notified());
            closed.as_mut().enable();
            if self.shared.open.load(Ordering::SeqCst) == 0 {
                return;
            }
            closed.await;
        }
    }
}

impl Tracked {
    /// Completes when the drain starts (at once if it has).
    pub(crate) async fn draining(&self) {
        std::future::poll_fn(|task| match self.poll_closing(task) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        })
        .await;
    }

    /// Whether the drain has started; if not, `task` is woken when it does. The waker is
    /// registered before the flag is read, so a drain starting in between is not missed.
    fn poll_closing(&self, task: &mut Context<'_>) -> bool {
        self.waker.register(task.waker());
        self.shared.closing.load(Ordering::SeqCst)
    }

    /// Serves `connection` until it ends, shutting it down gracefully when the drain starts.
    ///
    /// Takes the connection pinned where the caller holds it: a connection moved into this
    /// future would be stored twice in the connection's task (as the argument and as the pinned
    /// local; about 1.6 KiB each for an HTTP connection).
    pub(crate) async fn serve<C: GracefulConnection>(&self, mut connection: Pin<&mut C>) {
        let mut draining = self.shared.closing.load(Ordering::SeqCst);
        if draining {
            connection.as_mut().graceful_shutdown();
        }
        // The waker last registered: a connection's task polls with the same one every time,
        // and registering it again costs two atomic exchanges at every poll. Only the drain
        // takes it out of the slot, after raising the flag read at every poll.
        let mut registered: Option<std::task::Waker> = None;
        std::future::poll_fn(|task| {
            loop {
                if connection.as_mut().poll(task).is_ready() {
                    return Poll::Ready(());
                }
                if draining {
                    return Poll::Pending;
                }
                let closing = match &registered {
                    Some(waker) if waker.will_wake(task.waker()) => {
                        self.shared.closing.load(Ordering::SeqCst)
                    }
                    _ => {
                        registered = Some(task.waker().clone());
                        self.poll_closing(task)
                    }
                };
                if !closing {
                    return Poll::Pending;
                }
                // Polled again at once: the shutdown takes effect when the connection is polled.
                draining = true;
                connection.as_mut().graceful_shutdown();
            }
        })
        .await;
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.shared
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        if self.shared.open.fetch_sub(1, Ordering::SeqCst) == 1
            && self.shared.closing.load(Ordering::SeqCst)
        {
            self.shared.all_closed.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;

    use super::*;

    #[tokio::test]
    async fn serving_a_connection_does_not_store_it_a_second_time() {
        let builder = http1::Builder::new();
        let (io, _client) = tokio::io::duplex(64);
        let service = hyper::service::service_fn(|_| async {
            Ok::<_, Infallible>(http::Response::new(Empty::<Bytes>::new()))
        });
        let connection = pin!(builder.serve_connection(TokioIo::new(io), service));
        let connection_bytes = std::mem::size_of_val(&*connection);
        let drain = Drain::default();
        let tracked = drain.track();
        let serving = tracked.serve(connection);
        // Every open connection's task holds this future: what it adds is per connection.
        let serving_bytes = std::mem::size_of_val(&serving);
        assert!(
            serving_bytes < connection_bytes / 4,
            "serving adds {serving_bytes} bytes to a {connection_bytes}-byte connection"
        );
    }
}

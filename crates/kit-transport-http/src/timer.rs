//! hyper's timer for one HTTP/1.1 connection, whose header-read deadline is kept from one
//! request to the next.
//!
//! hyper (1.12) times each request head with a new sleep and drops it once the head is in. With
//! tokio's timer that is, for every request, a sleep made, an insertion into the timer wheel
//! and a removal, each under the driver's lock. [`ConnectionTimer`] keeps the tokio sleep hyper
//! drops and hands it back for the next head (addsvc's `POST /sum`: 240 instructions fewer a
//! request, docs/PERFORMANCE.md).
//!
//! A head's deadline is later than the last one's, so the kept sleep is not moved at all: it
//! fires at its old deadline, and finding the head's deadline still ahead, moves itself there
//! then. A connection's sleep is thus moved once per timeout's length at most, not at every
//! request: moving a tokio sleep clones the runtime's handle, a reference count that every
//! worker thread shares, and `perf annotate` put a percent of the CPU per request there. A
//! deadline earlier than the sleep's moves it at once. Either way a sleep completes at its
//! deadline, never before; the kept sleep may wake the connection's task for nothing, which a
//! future must allow for anyway.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

type TokioSleep = Pin<Box<tokio::time::Sleep>>;

/// A `hyper::rt::Timer` for one connection (made per connection, so the sleep it keeps belongs
/// to the runtime the connection runs on and goes with the connection).
#[derive(Clone, Default)]
pub(crate) struct ConnectionTimer {
    /// The sleep of the last head read, kept for the next.
    spare: Arc<Mutex<Option<TokioSleep>>>,
}

impl ConnectionTimer {
    fn sleep_at(&self, deadline: Instant) -> KeptSleep {
        let spare = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let sleep = match spare {
            Some(mut sleep) => {
                due_by(&mut sleep, deadline.into());
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline.into())),
        };
        KeptSleep {
            sleep: Some(sleep),
            deadline: deadline.into(),
            spare: Arc::clone(&self.spare),
        }
    }
}

impl hyper::rt::Timer for ConnectionTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.sleep_at(self.now() + duration))
    }

    /// tokio's clock, which the deadlines are kept on (and which tests may pause).
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.sleep_at(deadline))
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, deadline: Instant) {
        match sleep.as_mut().downcast_mut_pin::<KeptSleep>() {
            Some(kept) => kept.reset(deadline),
            None => *sleep = self.sleep_until(deadline),
        }
    }
}

/// Moves `sleep` to `deadline` if it would fire later; one that fires earlier is left where it
/// is (see the module's doc).
fn due_by(sleep: &mut TokioSleep, deadline: tokio::time::Instant) {
    if sleep.deadline() > deadline {
        sleep.as_mut().reset(deadline);
    }
}

/// A sleep until `deadline` that goes back to its connection's timer when dropped. The tokio
/// sleep's own deadline may be earlier (see the module's doc), never later.
struct KeptSleep {
    sleep: Option<TokioSleep>,
    deadline: tokio::time::Instant,
    spare: Arc<Mutex<Option<TokioSleep>>>,
}

impl KeptSleep {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        // KeptSleep is Unpin: the tokio sleep is pinned in its own box.
        let this = self.get_mut();
        this.deadline = deadline.into();
        if let Some(sleep) = &mut this.sleep {
            due_by(sleep, this.deadline);
        }
    }
}

impl Future for KeptSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(sleep) = &mut this.sleep else {
            return Poll::Ready(());
        };
        loop {
            std::task::ready!(sleep.as_mut().poll(cx));
            if sleep.deadline() >= this.deadline {
                return Poll::Ready(());
            }
            // Fired at an earlier deadline: on to this one (registered by the next poll).
            sleep.as_mut().reset(this.deadline);
        }
    }
}

impl hyper::rt::Sleep for KeptSleep {}

impl Drop for KeptSleep {
    fn drop(&mut self) {
        if let Some(sleep) = self.sleep.take() {
            *self.spare.lock().unwrap_or_else(PoisonError::into_inner) = Some(sleep);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Timer;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn a_kept_sleep_fires_at_its_new_deadline_not_its_old_one() {
        let timer = ConnectionTimer::default();
        let start = Instant::now();
        let mut first = timer.sleep_until((start + Duration::from_secs(1)).into_std());
        // Registered with the driver, as hyper's first poll of a head's timer does.
        assert!(poll_once(&mut first).is_pending());
        drop(first);
        assert!(timer.spare.lock().unwrap().is_some(), "kept");

        // Later: the kept sleep, moved to a deadline past its old one.
        let mut second = timer.sleep_until((start + Duration::from_secs(5)).into_std());
        assert!(timer.spare.lock().unwrap().is_none(), "handed back out");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            poll_once(&mut second).is_pending(),
            "fired at the old deadline"
        );
        tokio::time::timeout(Duration::from_secs(4), &mut second)
            .await
            .expect("fires at the new deadline");
        assert!(Instant::now() >= start + Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_sleep_that_fired_while_kept_is_timed_again() {
        let timer = ConnectionTimer::default();
        let mut first = timer.sleep(Duration::from_millis(300));
        assert!(poll_once(&mut first).is_pending());
        drop(first);
        // The request takes longer than the header timeout: the kept sleep fires, unused.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start = Instant::now();
        let mut second = timer.sleep(Duration::from_millis(300));
        assert!(poll_once(&mut second).is_pending(), "already fired");
        (&mut second).await;
        assert!(Instant::now() >= start + Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn a_kept_sleep_is_moved_later_only_once_it_fires() {
        let timer = ConnectionTimer::default();
        let start = Instant::now();
        let mut first = timer.sleep_until((start + Duration::from_secs(1)).into_std());
        assert!(poll_once(&mut first).is_pending());
        drop(first);
        // Heads come and go before the first deadline: the tokio sleep is left where it is.
        for later in 2..5 {
            let mut next = timer.sleep_until((start + Duration::from_secs(later)).into_std());
            assert!(poll_once(&mut next).is_pending());
            drop(next);
            let kept = timer.spare.lock().unwrap();
            assert_eq!(
                kept.as_ref().unwrap().deadline(),
                start + Duration::from_secs(1)
            );
        }
        // Past it, the sleep of a head due at 4 s fires at 4 s, not 1 s.
        let mut last = timer.sleep_until((start + Duration::from_secs(4)).into_std());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(
            poll_once(&mut last).is_pending(),
            "fired at the kept deadline"
        );
        (&mut last).await;
        assert_eq!(Instant::now(), start + Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_moves_a_sleep_earlier() {
        let timer = ConnectionTimer::default();
        let start = Instant::now();
        let mut sleep = timer.sleep_until((start + Duration::from_secs(10)).into_std());
        assert!(poll_once(&mut sleep).is_pending());
        timer.reset(&mut sleep, (start + Duration::from_secs(1)).into_std());
        (&mut sleep).await;
        let woke = Instant::now();
        assert!(woke >= start + Duration::from_secs(1) && woke < start + Duration::from_secs(10));
    }

    fn poll_once(sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>) -> Poll<()> {
        let waker = std::task::Waker::noop();
        sleep.as_mut().poll(&mut Context::from_waker(waker))
    }
}

//! hyper's timer for one HTTP/1.1 connection, whose header-read deadline is kept from one
//! request to the next.
//!
//! hyper (1.12) times each request head with a new sleep and drops it once the head is in. With
//! tokio's timer that is, for every request, a sleep made, an insertion into the timer wheel
//! and a removal, each under the driver's lock. [`ConnectionTimer`] keeps the tokio sleep hyper
//! drops and hands it back for the next head, moved to the new deadline: moving a registered
//! tokio timer later is one atomic exchange, and the driver's lock is left alone (addsvc's
//! `POST /sum`: 240 instructions fewer a request, docs/PERFORMANCE.md). A kept sleep may still
//! fire at its old deadline: that wakes the connection's task once for nothing, which a future
//! must allow for anyway.

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
                sleep.as_mut().reset(deadline.into());
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline.into())),
        };
        KeptSleep {
            sleep: Some(sleep),
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

/// A sleep that goes back to its connection's timer when dropped.
struct KeptSleep {
    sleep: Option<TokioSleep>,
    spare: Arc<Mutex<Option<TokioSleep>>>,
}

impl KeptSleep {
    fn reset(self: Pin<&mut Self>, deadline: Instant) {
        // KeptSleep is Unpin: the tokio sleep is pinned in its own box.
        if let Some(sleep) = &mut self.get_mut().sleep {
            sleep.as_mut().reset(deadline.into());
        }
    }
}

impl Future for KeptSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match &mut self.get_mut().sleep {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
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

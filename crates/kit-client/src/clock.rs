//! One instant per poll: the layers of a call read the clock once each time the call is polled.
//!
//! A caller's stack reads the time in several layers on every call (the retry budget, the rate
//! limit, p2c's latency start and end, the breaker's window): on a virtual machine each read
//! costs about 18 ns, together a quarter of the stack's cost. While a kit-client layer polls its
//! call, time stands still on that thread: the first read in the poll takes the clock, later
//! reads in the same poll (by any kit-client layer under it) get the same instant, and the
//! poll's end lets time move again.
//!
//! What that costs in accuracy: work done synchronously within one poll takes no time as these
//! layers see it (a call answered without waiting has a latency of zero; awaiting I/O ends the
//! poll, so a remote call is measured from before its request to after its reply). A poll that
//! blocks (CPU work, a blocking call) holds the time for as long as it blocks. The instant
//! belongs to the task being polled: another executor driven inside the poll (a nested
//! `block_on`) polls other tasks, whose layers read the clock afresh and give the outer
//! task's instant back when their poll ends. The clock is tokio's: a paused test clock pauses
//! these layers too, and on a paused clock time never moves within a poll anyway.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, RawWakerVTable, Waker};

use tokio::time::Instant;

#[derive(Clone, Copy)]
enum Slot {
    /// No kit-client layer is polling on this thread: every read takes the clock.
    Off,
    /// A layer is polling `Task` and nothing has read the clock yet.
    Open(Task),
    /// The instant of this poll of `Task`.
    At(Task, Instant),
}

/// Which task a poll is for: its waker's data and vtable pointers, compared and never
/// dereferenced (what `Waker::will_wake` compares, without cloning the waker).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Task(*const (), *const RawWakerVTable);

impl Task {
    fn of(waker: &Waker) -> Task {
        Task(waker.data(), waker.vtable())
    }
}

thread_local! {
    static SLOT: Cell<Slot> = const { Cell::new(Slot::Off) };
}

/// The time: this poll's instant under a kit-client layer, else the clock.
pub(crate) fn now() -> Instant {
    SLOT.with(|slot| match slot.get() {
        Slot::Off => Instant::now(),
        Slot::At(_, at) => at,
        Slot::Open(task) => {
            let at = Instant::now();
            slot.set(Slot::At(task, at));
            at
        }
    })
}

pin_project_lite::pin_project! {
    /// `call`, with time held still for each of its polls (a no-op inside a poll that already
    /// holds it). A struct rather than an `async fn`, which would add a state machine and move
    /// the call into it: this is on every call's path.
    pub(crate) struct Held<F> {
        #[pin]
        call: F,
    }
}

pub(crate) fn held<F: Future>(call: F) -> Held<F> {
    Held { call }
}

impl<F: Future> Future for Held<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _poll = HeldPoll::enter(Task::of(cx.waker()));
        self.project().call.poll(cx)
    }
}

/// One poll holding the time. The outermost poll of a task opens the slot (saving what was
/// there: `Off`, or another task's instant under a nested executor) and puts it back when
/// dropped, also on a panic; a poll nested in its own task's poll shares the instant.
struct HeldPoll {
    saved: Option<Slot>,
}

impl HeldPoll {
    fn enter(task: Task) -> HeldPoll {
        let saved = SLOT.with(|slot| match slot.get() {
            Slot::Open(holder) | Slot::At(holder, _) if holder == task => None,
            other => {
                slot.set(Slot::Open(task));
                Some(other)
            }
        });
        HeldPoll { saved }
    }
}

impl Drop for HeldPoll {
    fn drop(&mut self) {
        if let Some(saved) = self.saved {
            SLOT.with(|slot| slot.set(saved));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reads_within_a_poll_agree_and_time_moves_between_polls() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (first, second, after_wait, third) = held(async {
                let first = now();
                std::thread::sleep(Duration::from_millis(2));
                let second = now();
                tokio::time::sleep(Duration::from_millis(2)).await;
                let after_wait = now();
                (first, second, after_wait, held(async { now() }).await)
            })
            .await;
            assert_eq!(first, second, "one poll, one instant");
            assert!(
                after_wait >= first + Duration::from_millis(2),
                "a new poll reads the clock"
            );
            assert_eq!(third, after_wait, "a nested layer shares its caller's poll");
            // Outside any layer, and after a layer's poll ended, every read takes the clock.
            let outside = now();
            std::thread::sleep(Duration::from_millis(2));
            assert!(now() >= outside + Duration::from_millis(2));
        });
    }

    #[test]
    fn another_task_polled_inside_a_poll_reads_its_own_time_and_gives_the_instant_back() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(held(async {
            let outer = now();
            // A nested executor: another task (another waker) polled twice inside this poll,
            // 2 ms apart. Each of its polls reads the clock afresh.
            let mut polls = 0;
            let mut inner = std::pin::pin!(held(std::future::poll_fn(|_| {
                polls += 1;
                let at = now();
                if polls < 2 {
                    Poll::Pending
                } else {
                    Poll::Ready(at)
                }
            })));
            let mut other = Context::from_waker(Waker::noop());
            let first = now();
            assert!(inner.as_mut().poll(&mut other).is_pending());
            std::thread::sleep(Duration::from_millis(2));
            let Poll::Ready(second) = inner.as_mut().poll(&mut other) else {
                panic!("the inner task answers on its second poll");
            };
            assert!(
                second >= outer + Duration::from_millis(2),
                "time moved for it"
            );
            assert_eq!(first, outer);
            assert_eq!(now(), outer, "the outer task's instant is back");
        }));
    }

    #[test]
    fn a_panicking_poll_lets_time_go() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rt.block_on(held(async {
                now();
                panic!("in a poll");
            }))
        }));
        assert!(caught.is_err());
        let before = now();
        std::thread::sleep(Duration::from_millis(2));
        assert!(now() >= before + Duration::from_millis(2));
    }
}

//! The breaker's state machine, with time passed in: what the middleware runs and what the
//! property tests drive.

use std::time::Duration;

use tokio::time::Instant;

use super::State;
use crate::window::Window;

const CALLS: usize = 0;
const FAILURES: usize = 1;

/// When to trip, how long to stay open, how many probes to let through.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Config {
    pub(crate) consecutive_failures: u32,
    pub(crate) failure_ratio: f64,
    pub(crate) window: Duration,
    pub(crate) min_calls: u32,
    pub(crate) open_for: Duration,
    pub(crate) max_open_for: Duration,
    pub(crate) probes: u32,
}

/// How a call was let through, and in which phase (a count of state changes): the result of a
/// call let through in an earlier phase says nothing about this one and is ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Admission {
    pub(crate) probe: bool,
    pub(crate) phase: u64,
}

#[derive(Debug)]
enum Phase {
    Closed {
        consecutive: u32,
    },
    /// `trips`: how many times in a row the breaker opened without closing in between.
    Open {
        until: Instant,
        trips: u32,
    },
    HalfOpen {
        admitted: u32,
        succeeded: u32,
        trips: u32,
    },
}

#[derive(Debug)]
pub(crate) struct Circuit {
    config: Config,
    phase: Phase,
    /// Changes of state so far.
    changes: u64,
    window: Window,
}

impl Circuit {
    pub(crate) fn new(config: Config, now: Instant) -> Self {
        Circuit {
            config,
            phase: Phase::Closed { consecutive: 0 },
            changes: 0,
            window: Window::new(config.window, 10, now),
        }
    }

    /// The current phase, as admissions carry it.
    pub(crate) fn phase(&self) -> u64 {
        self.changes
    }

    pub(crate) fn state(&self) -> State {
        match self.phase {
            Phase::Closed { .. } => State::Closed,
            Phase::Open { .. } => State::Open,
            Phase::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// Lets a call through, or not (open, or every probe taken); an open breaker whose time is
    /// up turns half-open here, and the change is returned.
    pub(crate) fn admit(&mut self, now: Instant) -> (Option<Admission>, Option<(State, State)>) {
        match &mut self.phase {
            Phase::Closed { .. } => (Some(self.admission(false)), None),
            Phase::Open { until, trips } => {
                if now < *until {
                    return (None, None);
                }
                let trips = *trips;
                self.enter(Phase::HalfOpen {
                    admitted: 1,
                    succeeded: 0,
                    trips,
                });
                (
                    Some(self.admission(true)),
                    Some((State::Open, State::HalfOpen)),
                )
            }
            Phase::HalfOpen { admitted, .. } => {
                if *admitted >= self.config.probes {
                    return (None, None);
                }
                *admitted += 1;
                (Some(self.admission(true)), None)
            }
        }
    }

    /// Records how an admitted call ended; returns the change of state it caused. Results of
    /// calls let through in an earlier state (a call admitted while closed that ends after the
    /// breaker opened) are ignored.
    pub(crate) fn record(
        &mut self,
        now: Instant,
        admission: Admission,
        failure: bool,
    ) -> Option<(State, State)> {
        if admission.phase != self.changes {
            return None;
        }
        match &mut self.phase {
            Phase::Closed { consecutive } => {
                *consecutive = if failure { *consecutive + 1 } else { 0 };
                let consecutive = *consecutive;
                self.window.add(now, CALLS, 1);
                if failure {
                    self.window.add(now, FAILURES, 1);
                }
                // A success never trips: the window is summed for failures only.
                if failure
                    && (consecutive >= self.config.consecutive_failures || {
                        let [calls, failures] = self.window.sums(now);
                        calls >= u64::from(self.config.min_calls)
                            && failures as f64 >= self.config.failure_ratio * calls as f64
                    })
                {
                    self.open(now, 1);
                    return Some((State::Closed, State::Open));
                }
                None
            }
            Phase::HalfOpen {
                succeeded, trips, ..
            } => {
                if failure {
                    let trips = *trips + 1;
                    self.open(now, trips);
                    return Some((State::HalfOpen, State::Open));
                }
                *succeeded += 1;
                if *succeeded >= self.config.probes {
                    self.enter(Phase::Closed { consecutive: 0 });
                    self.window.clear();
                    return Some((State::HalfOpen, State::Closed));
                }
                None
            }
            Phase::Open { .. } => None,
        }
    }

    /// A probe that ended without a result (its call was dropped) gives its place back.
    pub(crate) fn release(&mut self, admission: Admission) {
        if admission.phase != self.changes {
            return;
        }
        if let Phase::HalfOpen { admitted, .. } = &mut self.phase {
            *admitted = admitted.saturating_sub(1);
        }
    }

    /// How long the breaker stays open after its `trips`-th trip in a row: doubling from
    /// `open_for`, at most `max_open_for`.
    pub(crate) fn open_for(&self, trips: u32) -> Duration {
        let factor = 1u32
            .checked_shl(trips.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.config
            .open_for
            .saturating_mul(factor)
            .min(self.config.max_open_for)
    }

    fn open(&mut self, now: Instant, trips: u32) {
        let until = now + self.open_for(trips);
        self.enter(Phase::Open { until, trips });
    }

    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.changes += 1;
    }

    fn admission(&self, probe: bool) -> Admission {
        Admission {
            probe,
            phase: self.changes,
        }
    }
}

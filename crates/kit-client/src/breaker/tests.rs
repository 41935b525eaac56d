//! The state machine alone, with time passed in: properties over random histories.

use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::State;
use super::circuit::{Admission, Circuit, Config};

fn config(consecutive: u32, probes: u32) -> Config {
    Config {
        consecutive_failures: consecutive,
        failure_ratio: 0.5,
        window: Duration::from_secs(10),
        min_calls: 20,
        open_for: Duration::from_secs(5),
        max_open_for: Duration::from_secs(60),
        probes,
    }
}

#[derive(Clone, Debug)]
enum Step {
    /// Time passes.
    Wait(u64),
    /// A call is admitted (or refused) and, at once, ends.
    Call { failure: bool },
    /// A call is admitted and dropped before it ends.
    Abandon,
    /// A call is admitted and held open.
    Hold,
    /// The oldest held call ends.
    Finish { failure: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u64..20_000).prop_map(Step::Wait),
        any::<bool>().prop_map(|failure| Step::Call { failure }),
        Just(Step::Abandon),
        Just(Step::Hold),
        any::<bool>().prop_map(|failure| Step::Finish { failure }),
    ]
}

const ALLOWED: [(State, State); 4] = [
    (State::Closed, State::Open),
    (State::Open, State::HalfOpen),
    (State::HalfOpen, State::Open),
    (State::HalfOpen, State::Closed),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_breaker_keeps_its_rules_over_any_history(
        consecutive in 1u32..6,
        probes in 1u32..4,
        steps in proptest::collection::vec(step(), 1..200),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut c = Circuit::new(config(consecutive, probes), t0);
        let mut held: Vec<Admission> = Vec::new();
        let mut in_a_row = 0u32;
        let mut opened_at: Option<Instant> = None;
        let mut trips_in_a_row = 0u32;
        for step in steps {
            let before = c.state();
            let mut changes = Vec::new();
            // A call that ends now: admitted now (Call) or held earlier (Finish).
            let ending = match step {
                Step::Wait(ms) => {
                    now += Duration::from_millis(ms);
                    None
                }
                Step::Call { failure } => {
                    let (admission, change) = c.admit(now);
                    changes.extend(change);
                    if before == State::Open && change.is_none() {
                        // Open and refusing: only before its time is up.
                        prop_assert!(admission.is_none());
                    }
                    admission.map(|a| (a, failure))
                }
                Step::Finish { failure } if !held.is_empty() => Some((held.remove(0), failure)),
                Step::Finish { .. } => None,
                Step::Abandon => {
                    let (admission, change) = c.admit(now);
                    changes.extend(change);
                    if let Some(admission) = admission {
                        c.release(admission);
                    }
                    None
                }
                Step::Hold => {
                    let (admission, change) = c.admit(now);
                    changes.extend(change);
                    held.extend(admission);
                    None
                }
            };
            if let Some((admission, failure)) = ending {
                let (state, current) = (c.state(), admission.phase == c.phase());
                let change = c.record(now, admission, failure);
                changes.extend(change);
                if !current {
                    // Let through in an earlier phase: says nothing about this one.
                    prop_assert_eq!(change, None);
                }
                if current && !admission.probe && state == State::Closed {
                    in_a_row = if failure { in_a_row + 1 } else { 0 };
                    if !failure {
                        // A success never opens a closed breaker.
                        prop_assert_eq!(change, None);
                    }
                    if in_a_row >= consecutive {
                        prop_assert_eq!(c.state(), State::Open);
                    }
                }
            }
            for change in &changes {
                prop_assert!(ALLOWED.contains(change), "{:?}", change);
            }
            if let Some(&(_, to)) = changes.last() {
                if to == State::Open {
                    trips_in_a_row += 1;
                    opened_at = Some(now);
                }
                if to == State::Closed {
                    trips_in_a_row = 0;
                    in_a_row = 0;
                }
                if to == State::Closed || to == State::Open {
                    in_a_row = 0;
                }
            }
            // Half-open never lets more probes through than allowed.
            let probes_out = held
                .iter()
                .filter(|a| a.probe && a.phase == c.phase())
                .count() as u32;
            if c.state() == State::HalfOpen {
                prop_assert!(probes_out <= probes);
            }
            // An open breaker stays open for its time, doubled per trip in a row, capped.
            if c.state() == State::Open {
                let opened = opened_at.expect("opened");
                let want = c.open_for(trips_in_a_row.max(1));
                prop_assert!(want >= Duration::from_secs(5) && want <= Duration::from_secs(60));
                if now < opened + want {
                    let (admission, _) = c.admit(now);
                    prop_assert!(admission.is_none(), "admitted {:?} after {:?} of {:?}", admission, now - opened, want);
                }
            }
        }
    }
}

#[test]
fn the_open_time_doubles_after_each_trip_in_a_row_up_to_the_cap() {
    let c = Circuit::new(config(1, 1), Instant::now());
    let secs: Vec<u64> = (1..=6).map(|t| c.open_for(t).as_secs()).collect();
    assert_eq!(secs, [5, 10, 20, 40, 60, 60]);
    assert_eq!(c.open_for(u32::MAX), Duration::from_secs(60));
}

#[test]
fn the_ratio_trips_only_with_enough_calls() {
    let t0 = Instant::now();
    let mut c = Circuit::new(config(100, 1), t0);
    // 19 calls, every other one failing: under min_calls, no trip.
    let call = Admission {
        probe: false,
        phase: 0,
    };
    for i in 0..19 {
        c.record(t0, call, i % 2 == 0);
    }
    assert_eq!(c.state(), State::Closed);
    // The 20th is a failure: 10 of 20 is 50%.
    assert_eq!(c.record(t0, call, true), Some((State::Closed, State::Open)));
}

#[test]
fn old_failures_leave_the_window() {
    let t0 = Instant::now();
    let mut c = Circuit::new(config(100, 1), t0);
    let call = Admission {
        probe: false,
        phase: 0,
    };
    for _ in 0..15 {
        c.record(t0, call, true);
    }
    // 11 s later the failures are gone: 20 successes and one failure do not trip.
    let later = t0 + Duration::from_secs(11);
    for _ in 0..20 {
        c.record(later, call, false);
    }
    assert_eq!(c.record(later, call, true), None);
    assert_eq!(c.state(), State::Closed);
}

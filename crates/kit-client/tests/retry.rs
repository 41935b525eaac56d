//! Retries: what is retried, deadlines, backoff, the callback, the budget. On tokio's paused
//! clock: times are exact.
#![cfg(feature = "retry")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kit_client::retry::{Attempts, Backoff, Budget, Decision, Retry, Stopped};
use kit_core::{Context, Endpoint, Error, ErrorKind, Failer, Failing, Middleware, endpoint_fn};
use proptest::prelude::*;
use tokio::time::Instant;

/// An endpoint that answers from `script` in turn (the last answer repeats), taking `latency`,
/// and records when each attempt started.
#[allow(clippy::type_complexity)]
fn scripted(
    script: Vec<Result<u32, ErrorKind>>,
    latency: Duration,
) -> (
    impl Endpoint<u32, Response = u32> + Clone,
    Arc<Mutex<Vec<Instant>>>,
) {
    let starts = Arc::new(Mutex::new(Vec::new()));
    let seen = starts.clone();
    let script = Arc::new(script);
    let ep = endpoint_fn(move |_cx, _n: u32| {
        let mut starts = seen.lock().unwrap();
        let i = starts.len().min(script.len() - 1);
        starts.push(Instant::now());
        let answer = script[i];
        async move {
            tokio::time::sleep(latency).await;
            answer.map_err(|kind| Error::new(kind, format!("attempt {} failed", i + 1)))
        }
    });
    (ep, starts)
}

fn attempts(err: &Error) -> &Attempts {
    std::error::Error::source(err)
        .and_then(|s| s.downcast_ref::<Attempts>())
        .expect("the attempts as the source")
}

#[tokio::test(start_paused = true)]
async fn only_retryable_failures_are_retried() {
    for (kind, want_attempts) in [
        (ErrorKind::Business, 1),
        (ErrorKind::InvalidArgument, 1),
        (ErrorKind::Internal, 1),
        (ErrorKind::Cancelled, 1),
        (ErrorKind::Unavailable, 3),
        (ErrorKind::Timeout, 3),
        (ErrorKind::Overloaded, 3),
    ] {
        let (ep, starts) = scripted(vec![Err(kind)], Duration::ZERO);
        let err = Retry::new()
            .wrap(ep)
            .call(Context::new(), 1)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind);
        assert_eq!(starts.lock().unwrap().len(), want_attempts, "{kind}");
    }
}

/// A reply carrying its business error, as every middleware's carried-error test has it.
#[derive(Clone)]
struct SumReply {
    err: Option<String>,
}

impl Failer for SumReply {
    fn failed(&self) -> Option<Error> {
        self.err.clone().map(Error::business)
    }
}

#[tokio::test(start_paused = true)]
async fn a_business_error_carried_in_a_reply_is_an_answer_not_retried() {
    let calls = Arc::new(Mutex::new(0));
    let seen = calls.clone();
    let ep = Retry::new().wrap(Failing::new(endpoint_fn(move |_cx, ()| {
        *seen.lock().unwrap() += 1;
        async {
            Ok::<_, Error>(SumReply {
                err: Some("can't sum two zeroes".into()),
            })
        }
    })));
    let result = ep.call(Context::new(), ()).await;
    assert_eq!(*calls.lock().unwrap(), 1);
    // The retry endpoint passes the marking on, for the layers above it.
    let carried = kit_core::Outcome::error_of(&ep, &result).unwrap();
    assert_eq!(carried.message(), "can't sum two zeroes");
}

#[tokio::test(start_paused = true)]
async fn the_final_error_keeps_every_attempts_error() {
    let (ep, _) = scripted(
        vec![
            Err(ErrorKind::Unavailable),
            Err(ErrorKind::Timeout),
            Err(ErrorKind::Overloaded),
        ],
        Duration::ZERO,
    );
    let err = Retry::new()
        .wrap(ep)
        .call(Context::new(), 1)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Overloaded);
    assert_eq!(err.message(), "attempt 3 failed");
    let all = attempts(&err);
    assert_eq!(all.stopped, Stopped::MaxAttempts);
    let kinds: Vec<ErrorKind> = all.errors.iter().map(Error::kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
            ErrorKind::Overloaded
        ]
    );
    // Success on a later attempt is a plain success.
    let (ep, starts) = scripted(vec![Err(ErrorKind::Unavailable), Ok(7)], Duration::ZERO);
    assert_eq!(
        Retry::new().wrap(ep).call(Context::new(), 1).await.unwrap(),
        7
    );
    assert_eq!(starts.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn backoff_waits_grow_with_full_jitter_under_their_ceilings() {
    fastrand::seed(5);
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
    let (ep, starts) = scripted(vec![Err(ErrorKind::Unavailable)], Duration::ZERO);
    let retry = Retry::new().max_attempts(5).backoff(backoff);
    retry.wrap(ep).call(Context::new(), 1).await.unwrap_err();
    let starts = starts.lock().unwrap();
    assert_eq!(starts.len(), 5);
    for (n, pair) in starts.windows(2).enumerate() {
        let waited = pair[1] - pair[0];
        assert!(
            waited <= backoff.ceiling(n as u32 + 1),
            "retry {}: {waited:?}",
            n + 1
        );
    }
}

#[tokio::test(start_paused = true)]
async fn all_attempts_end_within_the_overall_timeout_and_each_within_its_own() {
    // Every attempt hangs for a minute.
    let (ep, starts) = scripted(vec![Ok(1)], Duration::from_secs(60));
    let retry = Retry::new()
        .max_attempts(10)
        .backoff(Backoff::none())
        .timeout(Duration::from_millis(100))
        .attempt_timeout(Duration::from_millis(30));
    let start = Instant::now();
    let err = retry.wrap(ep).call(Context::new(), 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(
        start.elapsed() <= Duration::from_millis(100),
        "{:?}",
        start.elapsed()
    );
    // Attempts at 0, 30, 60 and 90 ms; the fourth is cut at 100 ms.
    assert_eq!(starts.lock().unwrap().len(), 4);
}

#[tokio::test(start_paused = true)]
async fn the_callers_deadline_bounds_everything() {
    let (ep, starts) = scripted(vec![Err(ErrorKind::Unavailable)], Duration::from_millis(20));
    let retry = Retry::new()
        .max_attempts(100)
        .timeout(Duration::from_secs(60))
        .backoff(Backoff::new(
            Duration::from_millis(10),
            Duration::from_millis(10),
        ));
    let start = Instant::now();
    let cx = Context::new().with_timeout(Duration::from_millis(95));
    let err = retry.wrap(ep).call(cx, 1).await.unwrap_err();
    assert!(
        start.elapsed() <= Duration::from_millis(95),
        "{:?}",
        start.elapsed()
    );
    assert!(starts.lock().unwrap().len() >= 3);
    // A wait that would end past the deadline is not started.
    assert_eq!(attempts(&err).stopped, Stopped::Deadline);
}

#[tokio::test(start_paused = true)]
async fn the_callback_decides_and_may_replace_the_error() {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    let (ep, starts) = scripted(vec![Err(ErrorKind::Unavailable)], Duration::ZERO);
    let retry = Retry::new()
        .max_attempts(10)
        .backoff(Backoff::none())
        .on_error(move |n, err| {
            log.lock().unwrap().push((n, err.kind()));
            match n {
                1 => Decision::Retry,
                _ => Decision::StopWith(Error::unavailable("payments is down, try later")),
            }
        });
    let err = retry.wrap(ep).call(Context::new(), 1).await.unwrap_err();
    assert_eq!(err.message(), "payments is down, try later");
    assert_eq!(attempts(&err).stopped, Stopped::Callback);
    assert_eq!(attempts(&err).errors.len(), 2);
    assert_eq!(starts.lock().unwrap().len(), 2);
    assert_eq!(
        *asked.lock().unwrap(),
        [(1, ErrorKind::Unavailable), (2, ErrorKind::Unavailable)]
    );

    let (ep, starts) = scripted(vec![Err(ErrorKind::Timeout)], Duration::ZERO);
    let stop = Retry::new().on_error(|_, _| Decision::Stop).wrap(ep);
    stop.call(Context::new(), 1).await.unwrap_err();
    assert_eq!(starts.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_budget_keeps_retries_of_a_total_outage_to_its_share() {
    // Everything fails. 5 attempts a call would send 5x the load; the budget allows 20% of the
    // calls plus 1 per second over 10 s: 1,000 calls make at most 1,000 + 200 + 10 attempts.
    let (ep, starts) = scripted(vec![Err(ErrorKind::Unavailable)], Duration::ZERO);
    let budget = Budget::new(Duration::from_secs(10), 1, 0.2);
    let ep = Retry::new()
        .max_attempts(5)
        .backoff(Backoff::none())
        .budget(budget)
        .wrap(ep);
    let mut stopped_by_budget = 0;
    for _ in 0..1000 {
        let err = ep.call(Context::new(), 1).await.unwrap_err();
        if std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<Attempts>())
            .is_some_and(|a| a.stopped == Stopped::Budget)
            || std::error::Error::source(&err).is_none()
        {
            stopped_by_budget += 1;
        }
    }
    let attempts = starts.lock().unwrap().len();
    assert!(attempts <= 1000 + 200 + 10, "{attempts} attempts");
    assert!(
        attempts >= 1000 + 200,
        "the budget's share is used: {attempts}"
    );
    assert!(stopped_by_budget > 700, "{stopped_by_budget}");
}

proptest! {
    /// Within one window, a budget grants exactly what its arithmetic allows: a withdrawal
    /// succeeds iff withdrawals + 1 <= floor + ratio x deposits, whatever the interleaving.
    #[test]
    fn the_budget_grants_exactly_its_share(
        floor in 0u32..5,
        ratio_pct in 0u32..=100,
        ops in proptest::collection::vec(any::<bool>(), 0..300),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
        rt.block_on(async {
            let ratio = f64::from(ratio_pct) / 100.0;
            let budget = Budget::new(Duration::from_secs(1), floor, ratio);
            let (mut deposits, mut granted) = (0u64, 0u64);
            for deposit in ops {
                if deposit {
                    budget.deposit();
                    deposits += 1;
                } else {
                    let allowed = (granted + 1) as f64 <= f64::from(floor) + ratio * deposits as f64;
                    prop_assert_eq!(budget.withdraw(), allowed);
                    granted += u64::from(allowed);
                }
            }
            Ok(())
        })?;
    }
}

#[tokio::test(start_paused = true)]
async fn the_budget_refills_as_old_calls_leave_its_window() {
    let budget = Budget::new(Duration::from_secs(10), 0, 0.5);
    for _ in 0..10 {
        budget.deposit();
    }
    assert_eq!((0..10).filter(|_| budget.withdraw()).count(), 5);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert!(
        !budget.withdraw(),
        "the deposits left the window with the withdrawals"
    );
    for _ in 0..4 {
        budget.deposit();
    }
    assert_eq!((0..10).filter(|_| budget.withdraw()).count(), 2);
}

#[cfg(all(feature = "breaker", feature = "balance"))]
#[tokio::test(start_paused = true)]
async fn a_call_refused_before_sending_is_retried_without_charging_the_budget() {
    use kit_client::NotSent;
    use kit_client::balance::{Balanced, RoundRobin};
    use kit_client::breaker::Breaker;
    use kit_core::{BoxEndpoint, FixedEndpointer};

    // One instance's breaker is open; the budget allows no retry at all.
    let (down, _) = scripted(vec![Err(ErrorKind::Unavailable)], Duration::ZERO);
    let open = Breaker::new().consecutive_failures(1).wrap(down);
    open.call(Context::new(), 1).await.unwrap_err();
    let refused = open.call(Context::new(), 1).await.unwrap_err();
    assert!(NotSent::is_source_of(&refused));
    let (up, _) = scripted(vec![Ok(5)], Duration::ZERO);
    let ep = Retry::new()
        .budget(Budget::none())
        .wrap(Balanced::new(RoundRobin::new(FixedEndpointer::new(vec![
            BoxEndpoint::new(open),
            BoxEndpoint::new(up),
        ]))));
    // Round robin sends every other call to the open breaker first: each is retried on the
    // live instance although the budget is empty.
    for _ in 0..10 {
        assert_eq!(ep.call(Context::new(), 1).await.unwrap(), 5);
    }
}

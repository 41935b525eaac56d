//! The breaker around a real endpoint, on tokio's paused clock.
#![cfg(feature = "breaker")]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kit_client::breaker::{Breaker, State};
use kit_core::{Context, Endpoint, Error, ErrorKind, Failer, Failing, Middleware, endpoint_fn};

/// An endpoint that fails while `down` is set, taking `latency`; counts its calls.
fn switchable(
    latency: Duration,
) -> (
    impl Endpoint<(), Response = ()> + Clone,
    Arc<AtomicBool>,
    Arc<AtomicUsize>,
) {
    let (down, calls) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicUsize::new(0)),
    );
    let (d, c) = (down.clone(), calls.clone());
    let ep = endpoint_fn(move |_cx, ()| {
        c.fetch_add(1, Ordering::SeqCst);
        let failing = d.load(Ordering::SeqCst);
        async move {
            tokio::time::sleep(latency).await;
            if failing {
                return Err(Error::unavailable("connection refused"));
            }
            Ok(())
        }
    });
    (ep, down, calls)
}

#[tokio::test(start_paused = true)]
async fn it_opens_refuses_probes_closes_and_opens_longer_after_a_failed_probe() {
    let changes = Arc::new(Mutex::new(Vec::new()));
    let log = changes.clone();
    let (inner, down, calls) = switchable(Duration::ZERO);
    let ep = Breaker::new()
        .consecutive_failures(3)
        .open_for(Duration::from_secs(5))
        .probes(2)
        .on_state_change(move |from, to| log.lock().unwrap().push((from, to)))
        .wrap(inner);
    for _ in 0..3 {
        assert_eq!(
            ep.call(Context::new(), ()).await.unwrap_err().message(),
            "connection refused"
        );
    }
    assert_eq!(ep.state(), State::Open);
    // Open: refused at once, the instance is not called.
    let refused = ep.call(Context::new(), ()).await.unwrap_err();
    assert_eq!(
        (refused.kind(), refused.message()),
        (ErrorKind::Unavailable, "circuit breaker is open")
    );
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    tokio::time::advance(Duration::from_millis(4_999)).await;
    assert!(ep.call(Context::new(), ()).await.is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Time is up: a probe goes through, fails, and the breaker opens for twice as long.
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(
        ep.call(Context::new(), ()).await.unwrap_err().message(),
        "connection refused"
    );
    assert_eq!(ep.state(), State::Open);
    tokio::time::advance(Duration::from_secs(9)).await;
    assert_eq!(
        ep.call(Context::new(), ()).await.unwrap_err().message(),
        "circuit breaker is open"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    // The instance is back: two probes succeed and the breaker closes.
    down.store(false, Ordering::SeqCst);
    ep.call(Context::new(), ()).await.unwrap();
    assert_eq!(ep.state(), State::HalfOpen);
    ep.call(Context::new(), ()).await.unwrap();
    assert_eq!(ep.state(), State::Closed);
    use State::*;
    assert_eq!(
        *changes.lock().unwrap(),
        [
            (Closed, Open),
            (Open, HalfOpen),
            (HalfOpen, Open),
            (Open, HalfOpen),
            (HalfOpen, Closed)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn half_open_lets_only_its_probes_through_and_a_dropped_probe_gives_its_place_back() {
    let (inner, down, calls) = switchable(Duration::from_millis(100));
    let ep = Breaker::new()
        .consecutive_failures(1)
        .open_for(Duration::from_secs(1))
        .probes(2)
        .wrap(inner);
    ep.call(Context::new(), ()).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(1)).await;
    down.store(false, Ordering::SeqCst);
    // Ten calls at once when half-open: two probes go through, eight are refused.
    let calls_before = calls.load(Ordering::SeqCst);
    let mut set = Vec::new();
    for _ in 0..10 {
        let ep = ep.clone();
        set.push(tokio::spawn(
            async move { ep.call(Context::new(), ()).await },
        ));
    }
    let mut ok = 0;
    for call in set {
        ok += usize::from(call.await.unwrap().is_ok());
    }
    assert_eq!(ok, 2);
    assert_eq!(calls.load(Ordering::SeqCst) - calls_before, 2);
    assert_eq!(ep.state(), State::Closed);

    // Open it again and abandon a probe: its place comes back.
    down.store(true, Ordering::SeqCst);
    ep.call(Context::new(), ()).await.unwrap_err();
    tokio::time::advance(Duration::from_secs(2)).await;
    down.store(false, Ordering::SeqCst);
    for _ in 0..2 {
        let abandoned =
            tokio::time::timeout(Duration::from_millis(10), ep.call(Context::new(), ()));
        assert!(abandoned.await.is_err());
    }
    ep.call(Context::new(), ()).await.unwrap();
    ep.call(Context::new(), ()).await.unwrap();
    assert_eq!(ep.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn the_failure_ratio_trips_over_its_window() {
    let flip = Arc::new(AtomicUsize::new(0));
    let f = flip.clone();
    // Every other call fails: never 3 in a row, but 50%.
    let inner = endpoint_fn(move |_cx, ()| {
        let n = f.fetch_add(1, Ordering::SeqCst);
        async move {
            if n.is_multiple_of(2) {
                Err(Error::timeout("slow"))
            } else {
                Ok(())
            }
        }
    });
    let ep = Breaker::new()
        .consecutive_failures(3)
        .failure_ratio(0.5)
        .min_calls(10)
        .window(Duration::from_secs(10))
        .wrap(inner);
    for _ in 0..8 {
        let _ = ep.call(Context::new(), ()).await;
    }
    assert_eq!(ep.state(), State::Closed, "under min_calls");
    let _ = ep.call(Context::new(), ()).await;
    let _ = ep.call(Context::new(), ()).await;
    let _ = ep.call(Context::new(), ()).await;
    assert_eq!(ep.state(), State::Open);
}

/// A reply carrying its business error, as every middleware's carried-error test has it.
struct SumReply {
    err: Option<String>,
}

impl Failer for SumReply {
    fn failed(&self) -> Option<Error> {
        self.err.clone().map(Error::business)
    }
}

#[tokio::test(start_paused = true)]
async fn business_errors_returned_or_carried_count_as_successes() {
    let returned = Breaker::new()
        .consecutive_failures(1)
        .wrap(endpoint_fn(|_cx, ()| async {
            Err::<(), _>(Error::business("insufficient funds"))
        }));
    let carried = Breaker::new()
        .consecutive_failures(1)
        .wrap(Failing::new(endpoint_fn(|_cx, ()| async {
            Ok::<_, Error>(SumReply {
                err: Some("can't sum two zeroes".into()),
            })
        })));
    let bad_request = Breaker::new()
        .consecutive_failures(1)
        .wrap(endpoint_fn(|_cx, ()| async {
            Err::<(), _>(Error::invalid_argument("a must be a number"))
        }));
    for _ in 0..100 {
        assert!(
            returned
                .call(Context::new(), ())
                .await
                .unwrap_err()
                .is_business()
        );
        assert!(
            carried
                .call(Context::new(), ())
                .await
                .unwrap()
                .err
                .is_some()
        );
        let _ = bad_request.call(Context::new(), ()).await;
    }
    assert_eq!(returned.state(), State::Closed);
    assert_eq!(carried.state(), State::Closed);
    assert_eq!(bad_request.state(), State::Closed);
    // And the marking reaches the layers above the breaker.
    let result = carried.call(Context::new(), ()).await;
    assert_eq!(
        kit_core::Outcome::of_call(&carried, &result),
        kit_core::Outcome::Rejected
    );
}

#[tokio::test(start_paused = true)]
async fn each_wrap_is_its_own_breaker_so_one_bad_instance_is_cut_off_alone() {
    let breaker = Breaker::new().consecutive_failures(2);
    let (bad, _, _) = switchable(Duration::ZERO);
    let (good, good_down, _) = switchable(Duration::ZERO);
    good_down.store(false, Ordering::SeqCst);
    let (bad, good) = (breaker.wrap(bad), breaker.wrap(good));
    for _ in 0..5 {
        let _ = bad.call(Context::new(), ()).await;
        good.call(Context::new(), ()).await.unwrap();
    }
    assert_eq!((bad.state(), good.state()), (State::Open, State::Closed));
}

//! The deadline middleware ends calls at the deadline or on cancellation, with a clear error.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kit_core::deadline::Deadline;
use kit_core::{Context, Endpoint, Error, ErrorKind, Middleware, endpoint_fn};
use tokio::time::Instant;

/// Sleeps for the requested time, counting calls that started and calls that finished.
fn sleeper(
    started: Arc<AtomicUsize>,
    finished: Arc<AtomicUsize>,
) -> impl Endpoint<Duration, Response = Duration> {
    endpoint_fn(move |_cx, d: Duration| {
        let (started, finished) = (Arc::clone(&started), Arc::clone(&finished));
        async move {
            started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(d).await;
            finished.fetch_add(1, Ordering::SeqCst);
            Ok(d)
        }
    })
}

fn counters() -> (Arc<AtomicUsize>, Arc<AtomicUsize>) {
    (Arc::default(), Arc::default())
}

#[tokio::test(start_paused = true)]
async fn a_call_past_the_callers_deadline_fails_with_a_timeout_at_the_deadline() {
    let (started, finished) = counters();
    let ep = Deadline::new().wrap(sleeper(started.clone(), finished.clone()));
    let cx = Context::new().with_timeout(Duration::from_millis(250));
    let t0 = Instant::now();
    let err = ep.call(cx, Duration::from_secs(10)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.to_string(), "deadline exceeded");
    assert_eq!(err.http_status(), 504);
    assert_eq!(err.grpc_code(), 4);
    assert_eq!(t0.elapsed(), Duration::from_millis(250));
    // The inner call was started, then dropped: it never finishes.
    assert_eq!(started.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(finished.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn a_call_within_the_deadline_returns_its_answer() {
    let (started, finished) = counters();
    let ep = Deadline::new().wrap(sleeper(started, finished.clone()));
    let cx = Context::new().with_timeout(Duration::from_secs(1));
    let out = ep.call(cx, Duration::from_millis(999)).await.unwrap();
    assert_eq!(out, Duration::from_millis(999));
    assert_eq!(finished.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn an_answer_ready_at_the_deadline_wins_over_the_deadline() {
    let (started, finished) = counters();
    let ep = Deadline::with_timeout(Duration::from_millis(100)).wrap(sleeper(started, finished));
    // The endpoint's timer and the deadline's fire at the same instant.
    let out = ep.call(Context::new(), Duration::from_millis(100)).await;
    assert_eq!(out.unwrap(), Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn without_a_deadline_calls_are_not_limited() {
    let (started, finished) = counters();
    let ep = Deadline::new().wrap(sleeper(started, finished));
    let out = ep.call(Context::new(), Duration::from_secs(3600)).await;
    assert_eq!(out.unwrap(), Duration::from_secs(3600));
}

#[tokio::test(start_paused = true)]
async fn an_expired_context_never_reaches_the_endpoint() {
    let (started, finished) = counters();
    let ep = Deadline::new().wrap(sleeper(started.clone(), finished));
    let cx = Context::new().with_timeout(Duration::from_millis(5));
    tokio::time::advance(Duration::from_millis(5)).await;
    let err = ep.call(cx, Duration::ZERO).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    let (cancelled, cancel) = Context::new().with_cancel();
    cancel.cancel();
    let err = ep.call(cancelled, Duration::ZERO).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(started.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn with_timeout_limits_each_call_and_the_endpoint_sees_the_tighter_deadline() {
    let seen = endpoint_fn(|cx: Context, ()| async move {
        Ok::<_, Error>(cx.remaining().expect("a deadline"))
    });
    let ep = Deadline::with_timeout(Duration::from_millis(300)).wrap(seen);
    // The caller's deadline is later: the middleware's applies.
    let cx = Context::new().with_timeout(Duration::from_secs(5));
    assert_eq!(ep.call(cx, ()).await.unwrap(), Duration::from_millis(300));
    // The caller's deadline is earlier: it stays.
    let cx = Context::new().with_timeout(Duration::from_millis(100));
    assert_eq!(ep.call(cx, ()).await.unwrap(), Duration::from_millis(100));

    let (started, finished) = counters();
    let ep = Deadline::with_timeout(Duration::from_millis(300)).wrap(sleeper(started, finished));
    let t0 = Instant::now();
    let err = ep
        .call(Context::new(), Duration::from_secs(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(t0.elapsed(), Duration::from_millis(300));
}

#[tokio::test(start_paused = true)]
async fn cancelling_mid_call_ends_it_with_a_cancelled_error() {
    let (started, finished) = counters();
    let ep = Deadline::new().wrap(sleeper(started, finished.clone()));
    let (cx, cancel) = Context::new().with_cancel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(40)).await;
        cancel.cancel();
    });
    let t0 = Instant::now();
    let err = ep.call(cx, Duration::from_secs(60)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(err.to_string(), "request cancelled");
    assert_eq!(t0.elapsed(), Duration::from_millis(40));
    assert_eq!(finished.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn the_endpoints_own_error_passes_through_unchanged() {
    let ep = Deadline::with_timeout(Duration::from_secs(1)).wrap(endpoint_fn(|_cx, ()| async {
        Err::<(), _>(Error::business("insufficient funds"))
    }));
    let err = ep.call(Context::new(), ()).await.unwrap_err();
    assert!(err.is_business());
    assert_eq!(err.to_string(), "insufficient funds");
}

// With a timeout, the middleware reads the clock once for the timeout and the check before the
// call: an expired caller's deadline and a zero timeout are both still refused at once.
#[tokio::test(start_paused = true)]
async fn with_timeout_refuses_an_expired_context_and_a_zero_timeout_before_the_call() {
    let (started, finished) = counters();
    let ep = Deadline::with_timeout(Duration::from_secs(1))
        .wrap(sleeper(started.clone(), finished.clone()));
    let cx = Context::new().with_timeout(Duration::from_millis(5));
    tokio::time::advance(Duration::from_millis(5)).await;
    let err = ep.call(cx, Duration::ZERO).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);

    let ep = Deadline::with_timeout(Duration::ZERO).wrap(sleeper(started.clone(), finished));
    let err = ep.call(Context::new(), Duration::ZERO).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(started.load(Ordering::SeqCst), 0);
}

//! Rate limits and the adaptive concurrency limit, on tokio's paused clock.
#![cfg(feature = "limit")]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kit_client::limit::{AdaptiveLimit, RateLimit};
use kit_core::{Context, Endpoint, Error, ErrorKind, Middleware, endpoint_fn};
use tokio::time::Instant;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn ok() -> impl Endpoint<(), Response = ()> + Clone {
    endpoint_fn(|_cx, ()| async { Ok::<_, Error>(()) })
}

#[tokio::test(start_paused = true)]
async fn the_erroring_limiter_refuses_over_the_rate_and_refills_with_time() {
    let ep = RateLimit::erroring(nz(10)).burst(nz(3)).wrap(ok());
    for _ in 0..3 {
        ep.call(Context::new(), ()).await.unwrap();
    }
    let err = ep.call(Context::new(), ()).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Overloaded, "rate limit exceeded")
    );
    // One token every 100 ms.
    tokio::time::advance(Duration::from_millis(99)).await;
    assert!(ep.call(Context::new(), ()).await.is_err());
    tokio::time::advance(Duration::from_millis(1)).await;
    assert!(ep.call(Context::new(), ()).await.is_ok());
    assert!(ep.call(Context::new(), ()).await.is_err());
    // Over a long run it lets exactly the rate through: 1 s is 10 tokens.
    tokio::time::advance(Duration::from_secs(10)).await;
    let mut passed = 0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(1) {
        passed += usize::from(ep.call(Context::new(), ()).await.is_ok());
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    // The full burst of 3, then 10 a second.
    assert!((12..=14).contains(&passed), "{passed}");
}

#[tokio::test(start_paused = true)]
async fn the_delaying_limiter_waits_for_its_token() {
    let ep = RateLimit::delaying(nz(10)).burst(nz(1)).wrap(ok());
    let start = Instant::now();
    for _ in 0..5 {
        ep.call(Context::new(), ()).await.unwrap();
    }
    // The first at once, then one every 100 ms.
    assert_eq!(start.elapsed(), Duration::from_millis(400));
}

#[tokio::test(start_paused = true)]
async fn the_delaying_limiter_fails_at_once_when_the_wait_would_pass_the_deadline() {
    let ep = RateLimit::delaying(nz(1)).burst(nz(1)).wrap(ok());
    ep.call(Context::new(), ()).await.unwrap();
    let start = Instant::now();
    let cx = Context::new().with_timeout(Duration::from_millis(500));
    let err = ep.call(cx, ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Overloaded);
    assert!(err.message().contains("would pass the deadline"), "{err}");
    assert_eq!(
        start.elapsed(),
        Duration::ZERO,
        "failed at once, not after waiting"
    );
    // With time enough, it waits.
    let cx = Context::new().with_timeout(Duration::from_secs(2));
    ep.call(cx, ()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_bucket() {
    let limit = RateLimit::erroring(nz(1)).burst(nz(2));
    let (a, b) = (limit.wrap(ok()), limit.clone().wrap(ok()));
    a.call(Context::new(), ()).await.unwrap();
    b.call(Context::new(), ()).await.unwrap();
    assert!(a.call(Context::new(), ()).await.is_err());
    assert!(b.call(Context::new(), ()).await.is_err());
}

/// A callee that answers within `capacity` calls in flight and is overloaded beyond.
fn callee(capacity: usize) -> impl Endpoint<(), Response = ()> + Clone {
    let in_flight = Arc::new(AtomicUsize::new(0));
    endpoint_fn(move |_cx, ()| {
        let in_flight = in_flight.clone();
        async move {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            if now > capacity {
                return Err(Error::overloaded("queue full"));
            }
            Ok(())
        }
    })
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_limit_finds_what_the_callee_takes_and_sheds_the_rest() {
    let limit = AdaptiveLimit::new().initial(5).bounds(1, 200);
    let ep = limit.wrap(callee(40));
    let (mut shed, mut overloaded_by_callee) = (0, 0);
    let mut limits = Vec::new();
    // Waves of 100 calls at once, 50 times.
    for _ in 0..50 {
        let mut calls = Vec::new();
        for _ in 0..100 {
            let ep = ep.clone();
            calls.push(tokio::spawn(
                async move { ep.call(Context::new(), ()).await },
            ));
        }
        for call in calls {
            if let Err(err) = call.await.unwrap() {
                assert_eq!(err.kind(), ErrorKind::Overloaded);
                if err.message().starts_with("adaptive limit") {
                    shed += 1;
                } else {
                    overloaded_by_callee += 1;
                }
            }
        }
        limits.push(limit.limit());
    }
    // It grew from 5 to the callee's 40 and backed off whenever it passed it: the AIMD
    // sawtooth, around and under the capacity.
    let peak = *limits.iter().max().unwrap();
    assert!((40..=60).contains(&peak), "{limits:?}");
    let late = &limits[20..];
    let mean = late.iter().sum::<usize>() / late.len();
    assert!((10..=45).contains(&mean), "{limits:?}");
    assert!(shed > 0);
    // Most excess calls were shed here rather than sent to struggle at the callee.
    assert!(
        overloaded_by_callee < shed,
        "{overloaded_by_callee} vs {shed}"
    );
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_adaptive_limit_backs_off_on_timeouts_not_on_business_errors() {
    let limit = AdaptiveLimit::new().initial(10).backoff(0.5);
    let business = limit.wrap(endpoint_fn(|_cx, ()| async {
        Err::<(), _>(Error::business("no"))
    }));
    business.call(Context::new(), ()).await.unwrap_err();
    assert_eq!(limit.limit(), 10);
    let slow = limit.wrap(endpoint_fn(|_cx, ()| async {
        Err::<(), _>(Error::timeout("deadline exceeded"))
    }));
    slow.call(Context::new(), ()).await.unwrap_err();
    assert_eq!(limit.limit(), 5);
    for _ in 0..10 {
        slow.call(Context::new(), ()).await.unwrap_err();
    }
    assert_eq!(limit.limit(), 1, "never below the minimum");
}

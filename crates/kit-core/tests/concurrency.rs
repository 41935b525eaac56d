//! The concurrency limit: refuses at once over the limit, gives places back however a call
//! ends (answer, error, dropped future), and is shared by the endpoints it wraps.

use std::time::Duration;

use kit_core::concurrency::ConcurrencyLimit;
use kit_core::{Context, Endpoint, Error, ErrorKind, Middleware, endpoint_fn};

fn sleeper() -> impl Endpoint<u64, Response = u64> + Clone {
    endpoint_fn(|_cx, ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        if ms == 0 {
            return Err(Error::internal("zero"));
        }
        Ok(ms)
    })
}

#[tokio::test(start_paused = true)]
async fn calls_over_the_limit_are_refused_as_overloaded_and_places_come_back() {
    let limit = ConcurrencyLimit::new(2);
    let ep = limit.wrap(sleeper());
    let (a, b, c) = tokio::join!(
        ep.call(Context::new(), 10),
        ep.call(Context::new(), 10),
        async {
            tokio::task::yield_now().await;
            ep.call(Context::new(), 10).await
        }
    );
    assert_eq!((a.unwrap(), b.unwrap()), (10, 10));
    let refused = c.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Overloaded);
    assert_eq!(refused.message(), "more than 2 calls in flight");
    assert_eq!(limit.in_flight(), 0);
    // An error gives its place back too.
    assert!(ep.call(Context::new(), 0).await.is_err());
    assert_eq!(limit.in_flight(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_call_gives_its_place_back() {
    let limit = ConcurrencyLimit::new(1);
    let ep = limit.wrap(sleeper());
    let abandoned = tokio::time::timeout(Duration::from_millis(5), ep.call(Context::new(), 1000));
    assert!(abandoned.await.is_err());
    assert_eq!(limit.in_flight(), 0);
    assert_eq!(ep.call(Context::new(), 1).await.unwrap(), 1);
}

#[tokio::test(start_paused = true)]
async fn endpoints_wrapped_by_one_limit_share_it() {
    let limit = ConcurrencyLimit::new(1);
    let (first, second) = (limit.wrap(sleeper()), limit.clone().wrap(sleeper()));
    let (a, b) = tokio::join!(first.call(Context::new(), 10), async {
        tokio::task::yield_now().await;
        second.call(Context::new(), 10).await
    });
    assert!(a.is_ok());
    assert_eq!(b.unwrap_err().kind(), ErrorKind::Overloaded);
    // A limit of zero refuses everything.
    let closed = ConcurrencyLimit::new(0).wrap(sleeper());
    assert_eq!(
        closed.call(Context::new(), 1).await.unwrap_err().kind(),
        ErrorKind::Overloaded
    );
}

//! Endpoints: closures and structs, concurrency through `&self`, boxing.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kit_core::{BoxEndpoint, Context, Endpoint, Error, ErrorKind, endpoint_fn};

struct Counter {
    calls: AtomicUsize,
}

impl Endpoint<()> for Counter {
    type Response = usize;

    async fn call(&self, _cx: Context, (): ()) -> Result<usize, Error> {
        Ok(self.calls.fetch_add(1, Ordering::SeqCst) + 1)
    }
}

#[tokio::test]
async fn a_closure_is_an_endpoint() {
    let echo = endpoint_fn(|_cx, s: String| async move { Ok(s) });
    assert_eq!(echo.call(Context::new(), "x".into()).await.unwrap(), "x");
    // EndpointFn is Copy when its closure is: both copies stay usable.
    let copy = echo;
    assert_eq!(copy.call(Context::new(), "y".into()).await.unwrap(), "y");
    assert_eq!(echo.call(Context::new(), "z".into()).await.unwrap(), "z");

    let fails = endpoint_fn(|_cx, n: u8| async move {
        Err::<u8, _>(Error::invalid_argument(format!("bad {n}")))
    });
    let err = fails.call(Context::new(), 7).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(err.message(), "bad 7");
}

#[tokio::test]
async fn the_endpoint_sees_the_callers_context() {
    #[derive(Debug, PartialEq)]
    struct User(&'static str);
    let whoami = endpoint_fn(|cx: Context, ()| async move {
        cx.get::<User>()
            .map(|u| u.0)
            .ok_or_else(|| Error::new(ErrorKind::Unauthenticated, "who are you?"))
    });
    let cx = Context::new().with_value(User("ada"));
    assert_eq!(whoami.call(cx, ()).await.unwrap(), "ada");
    let err = whoami.call(Context::new(), ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_endpoint_serves_many_concurrent_calls() {
    let counter = Arc::new(Counter {
        calls: AtomicUsize::new(0),
    });
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let counter = Arc::clone(&counter);
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..100 {
                seen.push(counter.call(Context::new(), ()).await.unwrap());
            }
            seen
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    // Every call got its own number: no call was lost or doubled.
    assert_eq!(all, (1..=6400).collect::<Vec<_>>());
}

#[tokio::test]
async fn calls_overlap_in_time_through_a_shared_reference() {
    // Two calls on the same endpoint meet at a barrier: only possible if both are in flight
    // at once. If calls were serialised the barrier would never open, and the timeout fails
    // the test instead of hanging it.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let ep = {
        let barrier = Arc::clone(&barrier);
        endpoint_fn(move |_cx, n: u8| {
            let barrier = Arc::clone(&barrier);
            async move {
                barrier.wait().await;
                Ok::<_, Error>(n)
            }
        })
    };
    let both = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(ep.call(Context::new(), 1), ep.call(Context::new(), 2))
    })
    .await
    .expect("both calls in flight at once");
    assert_eq!((both.0.unwrap(), both.1.unwrap()), (1, 2));
}

#[tokio::test]
async fn boxed_endpoints_of_different_types_share_a_collection() {
    let counter = Counter {
        calls: AtomicUsize::new(10),
    };
    let set: Vec<BoxEndpoint<(), usize>> = vec![
        BoxEndpoint::new(counter),
        BoxEndpoint::new(endpoint_fn(|_cx, ()| async { Ok(99) })),
        BoxEndpoint::new(endpoint_fn(|_cx, ()| async {
            Err(Error::unavailable("down"))
        })),
    ];
    let copies = set.clone();
    let mut out = Vec::new();
    for ep in set.iter().chain(copies.iter()) {
        out.push(ep.call(Context::new(), ()).await.map_err(|e| e.kind()));
    }
    assert_eq!(
        out,
        [
            Ok(11),
            Ok(99),
            Err(ErrorKind::Unavailable),
            Ok(12), // the clone shares the same counter
            Ok(99),
            Err(ErrorKind::Unavailable),
        ]
    );
}

#[tokio::test]
async fn a_boxed_endpoint_can_be_spawned() {
    let ep: BoxEndpoint<u64, u64> = BoxEndpoint::new(endpoint_fn(|_cx, n: u64| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        Ok(n * 2)
    }));
    let handle = tokio::spawn({
        let ep = ep.clone();
        async move { ep.call(Context::new(), 21).await }
    });
    assert_eq!(handle.await.unwrap().unwrap(), 42);
}

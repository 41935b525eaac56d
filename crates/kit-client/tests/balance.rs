//! Balancers over a changing set: spread, set changes, empty sets, load, and retries going
//! elsewhere. On tokio's paused clock, so latencies are exact and runs repeat.
#![cfg(all(feature = "balance", feature = "retry"))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kit_client::balance::{Balanced, P2c, Random, RoundRobin};
use kit_client::retry::{Backoff, Retry};
use kit_core::{
    BoxEndpoint, Context, Endpoint, EndpointSet, Error, ErrorKind, FixedEndpointer, Middleware,
    endpoint_fn,
};

/// An instance: answers its id after `latency`, or fails with `fail`; counts its calls.
struct Instance {
    calls: Arc<AtomicUsize>,
    endpoint: BoxEndpoint<(), usize>,
}

fn instance(id: usize, latency: Duration, fail: Option<ErrorKind>) -> Instance {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let endpoint = BoxEndpoint::new(endpoint_fn(move |_cx, ()| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(latency).await;
            match fail {
                Some(kind) => Err(Error::new(kind, format!("instance {id} failed"))),
                None => Ok(id),
            }
        }
    }));
    Instance { calls, endpoint }
}

fn set(instances: &[&Instance]) -> Vec<BoxEndpoint<(), usize>> {
    instances.iter().map(|i| i.endpoint.clone()).collect()
}

fn count(i: &Instance) -> usize {
    i.calls.load(Ordering::SeqCst)
}

const MS: Duration = Duration::from_millis(1);

#[tokio::test(start_paused = true)]
async fn round_robin_calls_each_in_turn_and_follows_the_published_set() {
    let (a, b, c) = (
        instance(0, MS, None),
        instance(1, MS, None),
        instance(2, MS, None),
    );
    let endpoints = EndpointSet::new();
    endpoints.publish(set(&[&a, &b]));
    let ep = Balanced::new(RoundRobin::new(endpoints.clone()));
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(ep.call(Context::new(), ()).await.unwrap());
    }
    assert_eq!(got, [0, 1, 0, 1]);
    // b leaves and c joins: the next calls go to a and c only, c at once.
    endpoints.publish(set(&[&a, &c]));
    let before_b = count(&b);
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(ep.call(Context::new(), ()).await.unwrap());
    }
    got.sort();
    assert_eq!(got, [0, 0, 2, 2]);
    assert_eq!(
        count(&b),
        before_b,
        "an endpoint that left gets no new call"
    );
}

#[tokio::test(start_paused = true)]
async fn random_spreads_over_every_endpoint() {
    fastrand::seed(42);
    let instances: Vec<Instance> = (0..4).map(|i| instance(i, MS, None)).collect();
    let ep = Balanced::new(Random::new(FixedEndpointer::new(
        instances
            .iter()
            .map(|i| i.endpoint.clone())
            .collect::<Vec<_>>(),
    )));
    for _ in 0..400 {
        ep.call(Context::new(), ()).await.unwrap();
    }
    for i in &instances {
        // Uniform: 100 each in expectation; far from 0 and from 400.
        assert!((50..150).contains(&count(i)), "{}", count(i));
    }
}

#[tokio::test(start_paused = true)]
async fn an_empty_set_is_unavailable_and_says_so_and_a_failed_set_passes_its_error() {
    let empty = FixedEndpointer::<(), usize>::new(Vec::new());
    for err in [
        Balanced::new(RoundRobin::new(empty.clone()))
            .call(Context::new(), ())
            .await
            .unwrap_err(),
        Balanced::new(Random::new(empty.clone()))
            .call(Context::new(), ())
            .await
            .unwrap_err(),
        Balanced::new(P2c::new(empty))
            .call(Context::new(), ())
            .await
            .unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.message(), "no endpoints available");
    }
    let failed = EndpointSet::<(), usize>::new();
    failed.fail(Error::unavailable("etcd unreachable for 30s"));
    let err = Balanced::new(P2c::new(failed))
        .call(Context::new(), ())
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcd unreachable for 30s");
}

/// Runs `n` calls, `concurrency` at a time.
async fn load<E: Endpoint<(), Response = usize>>(ep: &E, n: usize, concurrency: usize) -> usize {
    let mut failed = 0;
    for _ in 0..n / concurrency {
        let calls = (0..concurrency).map(|_| ep.call(Context::new(), ()));
        for result in futures_join(calls).await {
            failed += usize::from(result.is_err());
        }
    }
    failed
}

/// Joins futures without a futures dependency: spawn-free, on this task.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|task| {
        let mut pending = false;
        for (f, slot) in futures.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(task) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[tokio::test(start_paused = true)]
async fn p2c_moves_load_off_a_slow_instance() {
    fastrand::seed(7);
    let fast = [instance(0, MS, None), instance(1, MS, None)];
    let slow = instance(2, Duration::from_millis(200), None);
    let ep = Balanced::new(P2c::new(FixedEndpointer::new(set(&[
        &fast[0], &fast[1], &slow,
    ]))));
    assert_eq!(load(&ep, 600, 6).await, 0);
    // Round robin would give it 200; p2c learns within a few calls and keeps it under 5%.
    assert!(
        count(&slow) < 30,
        "the slow instance got {} of 600",
        count(&slow)
    );
    assert_eq!(count(&fast[0]) + count(&fast[1]) + count(&slow), 600);
}

#[tokio::test(start_paused = true)]
async fn p2c_keeps_away_from_an_instance_that_fails_fast() {
    fastrand::seed(9);
    let good = [
        instance(0, Duration::from_millis(20), None),
        instance(1, Duration::from_millis(20), None),
    ];
    let bad = instance(2, Duration::ZERO, Some(ErrorKind::Unavailable));
    let ep = Balanced::new(P2c::new(FixedEndpointer::new(set(&[
        &good[0], &good[1], &bad,
    ]))));
    let failed = load(&ep, 300, 3).await;
    // Failing in no time must not make it look fast.
    assert_eq!(failed, count(&bad));
    assert!(
        count(&bad) < 15,
        "the failing instance got {} of 300",
        count(&bad)
    );
}

#[tokio::test(start_paused = true)]
async fn p2c_gives_a_joining_instance_calls_at_once() {
    fastrand::seed(3);
    let (a, b, c) = (
        instance(0, MS, None),
        instance(1, MS, None),
        instance(2, MS, None),
    );
    let endpoints = EndpointSet::new();
    endpoints.publish(set(&[&a, &b]));
    let ep = Balanced::new(P2c::new(endpoints.clone()));
    load(&ep, 100, 2).await;
    endpoints.publish(set(&[&a, &b, &c]));
    load(&ep, 30, 3).await;
    assert!(count(&c) >= 5, "the new instance got {} of 30", count(&c));
    // And one that leaves gets nothing more.
    endpoints.publish(set(&[&a, &c]));
    let before = count(&b);
    load(&ep, 30, 3).await;
    assert_eq!(count(&b), before);
}

#[tokio::test(start_paused = true)]
async fn a_retry_goes_to_an_endpoint_the_call_has_not_tried() {
    for balancer in ["round_robin", "random", "p2c"] {
        fastrand::seed(11);
        let down = [
            instance(0, MS, Some(ErrorKind::Unavailable)),
            instance(1, MS, Some(ErrorKind::Unavailable)),
        ];
        let up = instance(2, MS, None);
        let endpoints = FixedEndpointer::new(set(&[&down[0], &down[1], &up]));
        let retry = Retry::new().max_attempts(3).backoff(Backoff::none());
        let results: Vec<Result<usize, Error>> = match balancer {
            "round_robin" => {
                let ep = retry.wrap(Balanced::new(RoundRobin::new(endpoints)));
                futures_join((0..50).map(|_| ep.call(Context::new(), ()))).await
            }
            "random" => {
                let ep = retry.wrap(Balanced::new(Random::new(endpoints)));
                futures_join((0..50).map(|_| ep.call(Context::new(), ()))).await
            }
            _ => {
                let ep = retry.wrap(Balanced::new(P2c::new(endpoints)));
                futures_join((0..50).map(|_| ep.call(Context::new(), ()))).await
            }
        };
        // Three attempts over three instances, none twice: every call reaches the live one.
        assert!(
            results.iter().all(|r| r.as_ref().is_ok_and(|id| *id == 2)),
            "{balancer}"
        );
        assert_eq!(count(&up), 50, "{balancer}");
        assert!(count(&down[0]) <= 50 && count(&down[1]) <= 50, "{balancer}");
    }
}

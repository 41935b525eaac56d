//! What kit-client adds to a successful call, and a p2c pick among 100 endpoints beside tower's
//! `p2c::Balance` doing the same, in one run.
//!
//! Every endpoint answers at once, so each call's future is polled a single time with a no-op
//! waker: what is measured is the call path itself, not an executor.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::num::NonZeroU32;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kit_client::balance::{Balanced, Balancer, P2c};
use kit_client::breaker::Breaker;
use kit_client::limit::RateLimit;
use kit_client::retry::Retry;
use kit_core::{BoxEndpoint, Context, Endpoint, Error, FixedEndpointer, Middleware, endpoint_fn};
use tower::{Service, ServiceExt};

fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("benchmarked endpoints answer at once"),
    }
}

fn instance() -> impl Endpoint<u64, Response = u64> + Clone {
    endpoint_fn(|_cx, n: u64| std::future::ready(Ok::<_, Error>(n + 1)))
}

fn stack(c: &mut Criterion) {
    // A runtime is entered for tokio's clock (the breaker, budget and p2c read it).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut group = c.benchmark_group("client_stack");
    let bare = instance();
    group.bench_function("bare endpoint", |b| {
        b.iter(|| ready(bare.call(Context::new(), black_box(1))).unwrap())
    });
    // What a caller runs: retry over p2c over three instances, each behind its own breaker,
    // under a rate limit that is never reached.
    let instances: Vec<BoxEndpoint<u64, u64>> = (0..3)
        .map(|_| BoxEndpoint::new(Breaker::new().wrap(instance())))
        .collect();
    let full = Retry::new().wrap(
        RateLimit::erroring(NonZeroU32::MAX)
            .wrap(Balanced::new(P2c::new(FixedEndpointer::new(instances)))),
    );
    group.bench_function("retry + rate limit + p2c + breaker", |b| {
        b.iter(|| ready(full.call(Context::new(), black_box(1))).unwrap())
    });
    let breaker = Breaker::new().wrap(instance());
    group.bench_function("breaker alone", |b| {
        b.iter(|| ready(breaker.call(Context::new(), black_box(1))).unwrap())
    });
    let retry = Retry::new().wrap(instance());
    group.bench_function("retry alone", |b| {
        b.iter(|| ready(retry.call(Context::new(), black_box(1))).unwrap())
    });
    // What one clock read costs in this build (tokio's mockable clock with test-util on).
    group.bench_function("clock read (tokio Instant::now)", |b| {
        b.iter(|| black_box(tokio::time::Instant::now()))
    });
    group.bench_function("clock read (std Instant::now)", |b| {
        b.iter(|| black_box(std::time::Instant::now()))
    });
    let limit = RateLimit::erroring(NonZeroU32::MAX).wrap(instance());
    group.bench_function("rate limit alone", |b| {
        b.iter(|| ready(limit.call(Context::new(), black_box(1))).unwrap())
    });
    group.finish();
}

fn p2c_pick(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let mut group = c.benchmark_group("p2c_100");
    let endpoints: Vec<BoxEndpoint<u64, u64>> =
        (0..100).map(|_| BoxEndpoint::new(instance())).collect();
    let p2c = P2c::new(FixedEndpointer::new(endpoints));
    group.bench_function("kit-client P2c pick", |b| {
        b.iter(|| black_box(p2c.pick(&[]).unwrap()))
    });
    let balanced = Balanced::new(p2c);
    group.bench_function("kit-client pick + call", |b| {
        b.iter(|| ready(balanced.call(Context::new(), black_box(1))).unwrap())
    });
    // tower: the same 100 trivial services, each with a peak-EWMA load, in p2c::Balance.
    let services: Vec<_> = (0..100)
        .map(|_| {
            tower::load::PeakEwma::new(
                tower::service_fn(|n: u64| std::future::ready(Ok::<_, Infallible>(n + 1))),
                Duration::from_millis(30),
                10e9,
                tower::load::CompleteOnResponse::default(),
            )
        })
        .collect();
    let mut balance =
        tower::balance::p2c::Balance::new(tower::discover::ServiceList::new(services));
    group.bench_function("tower p2c::Balance ready + call", |b| {
        b.iter(|| {
            let svc = ready(balance.ready()).unwrap();
            ready(svc.call(black_box(1))).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, stack, p2c_pick);
criterion_main!(benches);

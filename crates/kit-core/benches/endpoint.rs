//! The cost of kit-core's abstractions per call: a bare endpoint, a 5-middleware chain (static
//! and boxed), a boxed endpoint, the deadline middleware and the tower bridges.
//!
//! Every endpoint here answers at once, so each call's future is polled a single time with a
//! no-op waker: what is measured is the call path itself, not an executor.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kit_core::deadline::Deadline;
use kit_core::tower::{EndpointService, ServiceEndpoint};
use kit_core::{BoxEndpoint, Chain, Context, Endpoint, Error, Middleware, endpoint_fn};
use tower::Service;

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

/// A middleware as a user would write one: it counts calls (as a metrics middleware would)
/// and passes the call through.
struct Count(&'static AtomicU64);

impl<E> Middleware<E> for Count {
    type Endpoint = Counted<E>;
    fn wrap(&self, inner: E) -> Counted<E> {
        Counted {
            inner,
            calls: self.0,
        }
    }
}

struct Counted<E> {
    inner: E,
    calls: &'static AtomicU64,
}

impl<E: Endpoint<Req>, Req: Send> Endpoint<Req> for Counted<E> {
    type Response = E::Response;
    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl Future<Output = Result<E::Response, Error>> + Send {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.call(cx, req)
    }
}

/// The lightest possible middleware: only the structure of a chain, no work.
struct Pass;

impl<E> Middleware<E> for Pass {
    type Endpoint = Passed<E>;
    fn wrap(&self, inner: E) -> Passed<E> {
        Passed(inner)
    }
}

struct Passed<E>(E);

impl<E: Endpoint<Req>, Req: Send> Endpoint<Req> for Passed<E> {
    type Response = E::Response;
    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl Future<Output = Result<E::Response, Error>> + Send {
        self.0.call(cx, req)
    }
}

static CALLS: AtomicU64 = AtomicU64::new(0);

fn bare() -> impl Endpoint<u64, Response = u64> + Clone {
    endpoint_fn(|_cx, n: u64| async move { Ok(n.wrapping_add(1)) })
}

fn counting_boxed(next: BoxEndpoint<u64, u64>) -> BoxEndpoint<u64, u64> {
    BoxEndpoint::new(endpoint_fn(move |cx, n: u64| {
        CALLS.fetch_add(1, Ordering::Relaxed);
        let next = next.clone();
        async move { next.call(cx, n).await }
    }))
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("endpoint");

    let ep = bare();
    g.bench_function("bare", |b| {
        b.iter(|| ready(ep.call(Context::new(), black_box(1))))
    });

    let chained = Chain::new()
        .with(Count(&CALLS))
        .with(Count(&CALLS))
        .with(Count(&CALLS))
        .with(Count(&CALLS))
        .with(Count(&CALLS))
        .wrap(bare());
    g.bench_function("chain_5", |b| {
        b.iter(|| ready(chained.call(Context::new(), black_box(1))))
    });

    let passthrough = Chain::new()
        .with(Pass)
        .with(Pass)
        .with(Pass)
        .with(Pass)
        .with(Pass)
        .wrap(bare());
    g.bench_function("chain_5_passthrough", |b| {
        b.iter(|| ready(passthrough.call(Context::new(), black_box(1))))
    });

    let boxed = BoxEndpoint::new(bare());
    g.bench_function("boxed", |b| {
        b.iter(|| ready(boxed.call(Context::new(), black_box(1))))
    });

    let boxed_chain = Chain::new()
        .with(counting_boxed)
        .with(counting_boxed)
        .with(counting_boxed)
        .with(counting_boxed)
        .with(counting_boxed)
        .wrap(BoxEndpoint::new(bare()));
    g.bench_function("boxed_chain_5", |b| {
        b.iter(|| ready(boxed_chain.call(Context::new(), black_box(1))))
    });

    // The timer needs a runtime's time driver to register with; it is never driven here, only
    // registered and dropped, as on every call that answers before its deadline.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let deadline = Deadline::new().wrap(bare());
    g.bench_function("deadline_none", |b| {
        b.iter(|| ready(deadline.call(Context::new(), black_box(1))))
    });
    let cx = Context::new().with_timeout(Duration::from_secs(60));
    g.bench_function("deadline_set", |b| {
        b.iter(|| ready(deadline.call(cx.clone(), black_box(1))))
    });

    let mut svc = EndpointService::new(bare());
    g.bench_function("tower_endpoint_as_service", |b| {
        b.iter(|| ready(svc.call((Context::new(), black_box(1)))))
    });

    let round_trip = ServiceEndpoint::new(EndpointService::new(bare()));
    g.bench_function("tower_service_as_endpoint", |b| {
        b.iter(|| ready(round_trip.call(Context::new(), black_box(1))))
    });

    g.finish();
    black_box(CALLS.load(Ordering::Relaxed));
}

criterion_group!(endpoint, benches);
criterion_main!(endpoint);

//! The server stack beside the same layers chained by hand, in one run: logging, metrics (a
//! real Prometheus registry), a timeout and a concurrency limit around an endpoint that answers
//! at once, each call polled a single time with a no-op waker.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kit_core::concurrency::ConcurrencyLimit;
use kit_core::deadline::Deadline;
use kit_core::{BoxEndpoint, Chain, Context, Endpoint, Error, Middleware, Named, endpoint_fn};
use kit_log::{Logger, Logging};
use kit_metrics::prometheus::{DEFAULT_BUCKETS, PrometheusCounter, PrometheusHistogram, Registry};
use kit_metrics::{METHOD_OUTCOME_LABELS, Metrics};
use kit_server::ServerStack;

fn ready<F: Future>(fut: F) -> F::Output {
    match pin!(fut)
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("benchmarked endpoints answer at once"),
    }
}

fn sum() -> impl Endpoint<(i64, i64), Response = i64> + Clone {
    endpoint_fn(|_cx, (a, b): (i64, i64)| std::future::ready(Ok::<_, Error>(a + b)))
}

fn stack(c: &mut Criterion) {
    // The timeout's timer needs a runtime to be made in (it never fires here).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let registry = Registry::new();
    let requests = PrometheusCounter::new(
        &registry,
        "requests_total",
        "Calls.",
        &METHOD_OUTCOME_LABELS,
    )
    .unwrap();
    let durations = PrometheusHistogram::new(
        &registry,
        "request_duration_seconds",
        "Call durations.",
        &METHOD_OUTCOME_LABELS,
        DEFAULT_BUCKETS.to_vec(),
    )
    .unwrap();
    // A logger whose records go nowhere: the middleware's own work is measured, not a writer.
    let logger = Logger::new(slog::Discard);
    let (timeout, limit) = (Duration::from_secs(10), 1024);

    let mut group = c.benchmark_group("server_stack");
    let bare = sum();
    group.bench_function("bare endpoint", |b| {
        b.iter(|| ready(bare.call(Context::new(), black_box((1, 2)))).unwrap())
    });
    let stacked = ServerStack::new("sum")
        .logging(logger.clone())
        .metrics(requests.clone(), durations.clone())
        .unwrap()
        .timeout(timeout)
        .concurrency_limit(limit)
        .wrap(sum());
    group.bench_function("ServerStack", |b| {
        b.iter(|| ready(stacked.call(Context::new(), black_box((1, 2)))).unwrap())
    });
    let metrics = || Metrics::new("sum", requests.clone(), durations.clone()).unwrap();
    // The stack makes the very endpoint the hand-made chain makes, type for type (this
    // compiles only if it does).
    let same_type = |stack_layers, by_hand| [stack_layers, by_hand];
    let _ = same_type(
        ServerStack::new("sum")
            .logging(logger.clone())
            .metrics(requests.clone(), durations.clone())
            .unwrap()
            .timeout(timeout)
            .concurrency_limit(limit)
            .layers()
            .wrap(sum()),
        Chain::new()
            .with(Named::new("sum"))
            .with(Logging::new(logger.clone()))
            .with(metrics())
            .with(Deadline::with_timeout(timeout))
            .with(ConcurrencyLimit::new(limit))
            .wrap(sum()),
    );
    let by_hand = BoxEndpoint::new(
        Chain::new()
            .with(Named::new("sum"))
            .with(Logging::new(logger.clone()))
            .with(metrics())
            .with(Deadline::with_timeout(timeout))
            .with(ConcurrencyLimit::new(limit))
            .wrap(sum()),
    );
    group.bench_function("the same layers chained by hand", |b| {
        b.iter(|| ready(by_hand.call(Context::new(), black_box((1, 2)))).unwrap())
    });
    // What the stack did before it was built on Chain: a box around every layer.
    let limited = BoxEndpoint::new(ConcurrencyLimit::new(limit).wrap(sum()));
    let timed = BoxEndpoint::new(Deadline::with_timeout(timeout).wrap(limited));
    let counted = BoxEndpoint::new(metrics().wrap(timed));
    let logged = BoxEndpoint::new(Logging::new(logger).wrap(counted));
    let each_boxed = BoxEndpoint::new(Named::new("sum").wrap(logged));
    group.bench_function("the same layers, each boxed", |b| {
        b.iter(|| ready(each_boxed.call(Context::new(), black_box((1, 2)))).unwrap())
    });
    group.finish();
}

criterion_group!(benches, stack);
criterion_main!(benches);

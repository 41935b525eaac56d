//! tower both ways, proved with tower's own layers: timeout, concurrency limit, load shedding,
//! `ServiceBuilder`, `service_fn`.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kit_core::deadline::Deadline;
use kit_core::tower::{EndpointService, LayerMiddleware, MiddlewareLayer, ServiceEndpoint};
use kit_core::{Chain, Context, Endpoint, Error, ErrorKind, Middleware, endpoint_fn};
use tokio::time::Instant;
use tower::limit::ConcurrencyLimitLayer;
use tower::timeout::TimeoutLayer;
use tower::{Service, ServiceBuilder, ServiceExt};

/// Sleeps `d` and tracks how many calls are inside at once.
#[derive(Clone, Default)]
struct InFlight {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
}

impl InFlight {
    fn endpoint(&self, d: Duration) -> impl Endpoint<u32, Response = u32> + Clone {
        let this = self.clone();
        endpoint_fn(move |_cx, n: u32| {
            let this = this.clone();
            async move {
                let inside = this.now.fetch_add(1, Ordering::SeqCst) + 1;
                this.max.fetch_max(inside, Ordering::SeqCst);
                tokio::time::sleep(d).await;
                this.now.fetch_sub(1, Ordering::SeqCst);
                Ok(n)
            }
        })
    }

    fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }
}

async fn call_concurrently<E: Endpoint<u32, Response = u32>>(ep: Arc<E>, n: u32) -> Vec<u32> {
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let ep = Arc::clone(&ep);
            tokio::spawn(async move { ep.call(Context::new(), i).await.unwrap() })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test(start_paused = true)]
async fn tower_timeout_around_an_endpoint_gives_a_timeout_error() {
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(50)))
        .service(EndpointService::new(
            InFlight::default().endpoint(Duration::from_secs(1)),
        ));
    let ep = ServiceEndpoint::new(svc);
    let t0 = Instant::now();
    let err = ep.call(Context::new(), 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.to_string(), "timed out");
    assert_eq!(err.detail().as_deref(), Some("request timed out"));
    assert_eq!(t0.elapsed(), Duration::from_millis(50));

    // A fast call passes through the same stack.
    let svc = ServiceBuilder::new()
        .layer(TimeoutLayer::new(Duration::from_millis(50)))
        .service(EndpointService::new(
            InFlight::default().endpoint(Duration::from_millis(10)),
        ));
    assert_eq!(
        ServiceEndpoint::new(svc)
            .call(Context::new(), 7)
            .await
            .unwrap(),
        7
    );
}

#[tokio::test(start_paused = true)]
async fn concurrency_limit_around_an_endpoint_bounds_calls_in_flight() {
    // Control: without the limit all ten calls are inside at once.
    let unlimited = InFlight::default();
    let out = call_concurrently(Arc::new(unlimited.endpoint(Duration::from_millis(10))), 10).await;
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    assert_eq!(unlimited.max(), 10);

    let limited = InFlight::default();
    let ep = ServiceEndpoint::new(ServiceBuilder::new().concurrency_limit(2).service(
        EndpointService::new(limited.endpoint(Duration::from_millis(10))),
    ));
    let t0 = Instant::now();
    let out = call_concurrently(Arc::new(ep), 10).await;
    assert_eq!(out, (0..10).collect::<Vec<_>>());
    assert_eq!(limited.max(), 2);
    // Five rounds of two.
    assert_eq!(t0.elapsed(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn load_shedding_reports_overload_as_an_error_kind() {
    let gauge = InFlight::default();
    let ep = Arc::new(ServiceEndpoint::new(
        ServiceBuilder::new()
            .load_shed()
            .concurrency_limit(1)
            .service(EndpointService::new(
                gauge.endpoint(Duration::from_millis(10)),
            )),
    ));
    let (a, b) = tokio::join!(ep.call(Context::new(), 1), ep.call(Context::new(), 2));
    assert_eq!(a.unwrap(), 1);
    let err = b.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Overloaded);
    assert!(err.is_failure());
    assert_eq!(err.http_status(), 429);
}

#[tokio::test(start_paused = true)]
async fn an_endpoint_driven_through_service_builder_as_a_tower_service() {
    let trimmed_len = endpoint_fn(|cx: Context, s: String| async move {
        // The kit deadline middleware inside the stack gave this call a deadline.
        assert!(cx.deadline().is_some());
        Ok::<_, Error>(s.len())
    });
    let mut svc = ServiceBuilder::new()
        .timeout(Duration::from_secs(1))
        .concurrency_limit(4)
        .map_request(|(cx, s): (Context, String)| (cx, s.trim().to_owned()))
        .layer(MiddlewareLayer::new(Deadline::with_timeout(
            Duration::from_millis(500),
        )))
        .service(EndpointService::new(trimmed_len));
    let n = svc
        .ready()
        .await
        .unwrap()
        .call((Context::new(), "  four  ".to_owned()))
        .await
        .unwrap();
    assert_eq!(n, 4);
    // The same stack stays usable for more calls, through oneshot too.
    let n = svc
        .clone()
        .oneshot((Context::new(), "abc".to_owned()))
        .await
        .unwrap();
    assert_eq!(n, 3);
}

#[tokio::test]
async fn any_cloneable_tower_service_is_an_endpoint() {
    let svc = tower::service_fn(|(cx, n): (Context, u64)| async move {
        Ok::<_, Infallible>(n + cx.get::<u64>().copied().unwrap_or(0))
    });
    let ep = ServiceEndpoint::new(svc);
    assert_eq!(
        ep.call(Context::new().with_value(10u64), 5).await.unwrap(),
        15
    );
    // And it composes like any endpoint.
    let ep = Chain::new().with(Deadline::new()).wrap(ep);
    assert_eq!(ep.call(Context::new(), 5).await.unwrap(), 5);
}

#[tokio::test]
async fn kit_errors_keep_their_kind_across_both_bridges() {
    let refuses = endpoint_fn(|_cx, ()| async {
        Err::<(), _>(Error::business("result exceeds maximum size").with_http_status(418))
    });
    let ep = ServiceEndpoint::new(
        ServiceBuilder::new()
            .timeout(Duration::from_secs(1))
            .service(EndpointService::new(refuses)),
    );
    let err = ep.call(Context::new(), ()).await.unwrap_err();
    assert!(err.is_business());
    assert_eq!(err.to_string(), "result exceeds maximum size");
    assert_eq!(err.http_status(), 418);
}

#[tokio::test(start_paused = true)]
async fn tower_layers_sit_in_a_kit_chain_in_order() {
    let gauge = InFlight::default();
    let ep = Chain::new()
        .with(LayerMiddleware::new(TimeoutLayer::new(
            Duration::from_millis(25),
        )))
        .with(LayerMiddleware::new(ConcurrencyLimitLayer::new(1)))
        .wrap(gauge.endpoint(Duration::from_millis(10)));
    let ep = Arc::new(ep);
    // The timeout is outside the limit, so it also counts time spent queueing for the permit:
    // of three concurrent 10 ms calls, the third would finish at 30 ms and times out at 25.
    let calls: Vec<_> = (0..3)
        .map(|i| {
            let ep = Arc::clone(&ep);
            tokio::spawn(async move { ep.call(Context::new(), i).await.map_err(|e| e.kind()) })
        })
        .collect();
    let mut out = Vec::new();
    for c in calls {
        out.push(c.await.unwrap());
    }
    assert_eq!(out, [Ok(0), Ok(1), Err(ErrorKind::Timeout)]);
    assert_eq!(gauge.max(), 1);
}

//! Spans opened through the `tracing` facade join kit's traces: inside an endpoint that
//! `Tracing` wraps, `#[tracing::instrument]` spans are its children (and theirs), in the
//! same trace, exported to the same Zipkin collector; kit-log's `TracingLayer`, in the same
//! subscriber, goes on writing the events as log lines.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kit_core::{Chain, Context, Endpoint, Error, Middleware, Named, endpoint_fn};
use kit_trace::{Tracing, ZipkinTracing};
use opentelemetry::trace::TracerProvider;
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;

mod support;

use support::{collector, errors_of};

#[tracing::instrument]
async fn lookup(n: i64) -> Result<i64, Error> {
    tracing::info!(n, "looking up");
    store(n).await;
    Ok(n * 2)
}

#[tracing::instrument]
async fn store(n: i64) {
    tokio::task::yield_now().await;
}

/// What kit-log writes, kept for the test to read.
#[derive(Clone, Default)]
struct Written(Arc<Mutex<Vec<u8>>>);

impl Write for Written {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn instrumented_functions_are_children_of_the_endpoint_span_in_one_trace() {
    let (addr, mut posted) = collector().await;
    let tracing = ZipkinTracing::new(
        "kit-test",
        format!("http://{addr}/api/v2/spans").parse().unwrap(),
        1.0,
    );
    let written = Written::default();
    let logger = kit_log::Logger::new(slog::Drain::ignore_res(kit_log::Logfmt::new(
        written.clone(),
    )));
    let subscriber = tracing_subscriber::registry()
        .with(tracing.tracing_layer())
        .with(kit_log::TracingLayer::new(logger));
    let _default = tracing::subscriber::set_default(subscriber);

    let ep = Chain::new()
        .with(Named::new("sum"))
        .with(Tracing::new(tracing.provider().tracer("t")))
        .wrap(endpoint_fn(|_cx: Context, n: i64| lookup(n)));
    assert_eq!(ep.call(Context::new(), 21).await.unwrap(), 42);
    // Outside any endpoint, an instrumented function starts a trace of its own.
    lookup(1).await.unwrap();
    tracing.shutdown().await.unwrap();

    let mut spans: Vec<Value> = Vec::new();
    while let Ok(Some((_, body))) =
        tokio::time::timeout(Duration::from_millis(500), posted.recv()).await
    {
        assert_eq!(errors_of(&body), Vec::<String>::new());
        spans.extend(body.as_array().unwrap().iter().cloned());
    }
    let named =
        |name: &str| -> Vec<&Value> { spans.iter().filter(|s| s["name"] == name).collect() };
    let [endpoint] = named("sum")[..] else {
        panic!("one endpoint span: {spans:#?}")
    };
    let lookups = named("lookup");
    let stores = named("store");
    assert_eq!((lookups.len(), stores.len()), (2, 2), "{spans:#?}");
    let traced = lookups
        .iter()
        .find(|s| s["traceId"] == endpoint["traceId"])
        .expect("a lookup in the endpoint's trace");
    assert_eq!(traced["parentId"], endpoint["id"]);
    assert_eq!(traced["localEndpoint"]["serviceName"], "kit-test");
    let stored = stores
        .iter()
        .find(|s| s["traceId"] == endpoint["traceId"])
        .expect("a store in the endpoint's trace");
    assert_eq!(stored["parentId"], traced["id"]);
    let alone = lookups
        .iter()
        .find(|s| s["traceId"] != endpoint["traceId"])
        .unwrap();
    assert!(alone.get("parentId").is_none(), "a root: {alone}");

    let log = String::from_utf8(written.0.lock().unwrap().clone()).unwrap();
    assert!(
        log.contains(r#"level=info msg="looking up""#) && log.contains("n=21"),
        "{log}"
    );
}

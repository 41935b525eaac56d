//! The Zipkin exporter against a collector on loopback: every span it posts validates against
//! the Zipkin v2 API's schema (tests/data, rewritten from ../shared/data/zipkin-api), and parent
//! links, service names, kinds, remote endpoints and tags are what Zipkin needs to show them.

use std::time::Duration;

use kit_trace::{Propagation, ZipkinTracing};
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use serde_json::Value;

mod support;

use support::{collector, errors_of};

#[test]
fn the_schema_check_bites() {
    let good = serde_json::json!([{"traceId": "5af7183fb1d4cf5f", "id": "352bff9a74ca9ad2",
        "parentId": "6b221d5bc9e6496c", "name": "get /api", "timestamp": 1556604172355737u64,
        "duration": 1431, "kind": "SERVER", "localEndpoint": {"serviceName": "kit", "ipv4": "10.0.0.1"},
        "tags": {"http.status_code": "200"}, "annotations": [{"timestamp": 1, "value": "ws"}]}]);
    assert_eq!(errors_of(&good), Vec::<String>::new());
    for (field, bad) in [
        (
            "traceId",
            serde_json::json!("5af7183fb1d4cf5f5af7183fb1d4cf5f5af71830"),
        ),
        ("traceId", serde_json::json!("5AF7183FB1D4CF5F")),
        ("id", serde_json::json!("0")),
        ("parentId", serde_json::json!("0000")),
        ("kind", serde_json::json!("server")),
        ("duration", serde_json::json!(0)),
        ("name", serde_json::json!("GET /api")),
        ("tags", serde_json::json!({"n": 1})),
        ("localEndpoint", serde_json::json!({"ipv4": "::1"})),
        ("localEndpoint", serde_json::json!({"port": 0})),
        ("parentid", serde_json::json!("6b221d5bc9e6496c")),
    ] {
        let mut span = good[0].clone();
        span[field] = bad.clone();
        assert!(
            !errors_of(&Value::Array(vec![span])).is_empty(),
            "{field}: {bad}"
        );
    }
    let mut span = good[0].clone();
    span.as_object_mut().unwrap().remove("id");
    assert!(!errors_of(&Value::Array(vec![span])).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_spans_are_valid_zipkin_v2_and_linked() {
    let (addr, mut posted) = collector().await;
    let url = format!("http://{addr}/api/v2/spans").parse().unwrap();
    let tracing = ZipkinTracing::new("kit-test", url, 1.0);
    let tracer = tracing.provider().tracer("kit-trace-test");

    // A server span continuing a Zipkin peer's trace (64-bit trace id, B3 headers).
    let mut headers = http::HeaderMap::new();
    headers.insert("x-b3-traceid", "48485a3953bb6124".parse().unwrap());
    headers.insert("x-b3-spanid", "a2fb4a1d1a96d312".parse().unwrap());
    headers.insert("x-b3-sampled", "1".parse().unwrap());
    let remote = Propagation::default().extract(&headers).unwrap();
    let parent = Context::new().with_remote_span_context(remote.span_context);
    let mut server = tracer
        .span_builder("POST /Sum")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("url.path", "/sum"),
            KeyValue::new("http.response.status_code", 200),
            KeyValue::new("network.peer.address", "127.0.0.1"),
            KeyValue::new("network.peer.port", 51234),
        ])
        .start_with_context(&tracer, &parent);
    let server_cx = parent.with_remote_span_context(server.span_context().clone());
    // A client span under it, to a peer that failed.
    let mut client = tracer
        .span_builder("grpc pb.Add/Concat")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("network.peer.address", "::1"),
            KeyValue::new("network.peer.port", 8082),
            KeyValue::new("peer.service", "addsvc"),
        ])
        .start_with_context(&tracer, &server_cx);
    client.add_event("retrying", vec![]);
    client.set_status(Status::error("upstream unavailable"));
    client.end();
    server.end();
    // A root span of a new trace.
    tracer
        .span_builder("tick")
        .with_kind(SpanKind::Internal)
        .start(&tracer)
        .end();

    tracing.shutdown().await.unwrap();
    let mut spans = Vec::new();
    while let Ok(Some((path, body))) =
        tokio::time::timeout(Duration::from_millis(500), posted.recv()).await
    {
        assert_eq!(path, "/api/v2/spans");
        assert_eq!(errors_of(&body), Vec::<String>::new(), "{body:#}");
        spans.extend(body.as_array().unwrap().iter().cloned());
    }
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let by_name = |name: &str| spans.iter().find(|s| s["name"] == name).unwrap().clone();
    let (server, client, tick) = (
        by_name("post /sum"),
        by_name("grpc pb.add/concat"),
        by_name("tick"),
    );

    assert_eq!(
        server["traceId"], "48485a3953bb6124",
        "the peer's 64-bit id, as it wrote it"
    );
    assert_eq!(server["parentId"], "a2fb4a1d1a96d312");
    assert_eq!(server["kind"], "SERVER");
    assert_eq!(server["localEndpoint"]["serviceName"], "kit-test");
    assert_eq!(
        server["remoteEndpoint"],
        serde_json::json!({"ipv4": "127.0.0.1", "port": 51234})
    );
    assert_eq!(server["tags"]["url.path"], "/sum");
    assert_eq!(server["tags"]["http.response.status_code"], "200");
    assert!(server["tags"].get("error").is_none());

    assert_eq!(client["traceId"], server["traceId"]);
    assert_eq!(client["parentId"], server["id"]);
    assert_eq!(client["kind"], "CLIENT");
    assert_eq!(
        client["remoteEndpoint"],
        serde_json::json!({"ipv6": "::1", "port": 8082, "serviceName": "addsvc"})
    );
    assert_eq!(client["tags"]["error"], "upstream unavailable");
    assert_eq!(client["annotations"][0]["value"], "retrying");

    assert!(
        tick.get("parentId").is_none(),
        "a root has no parentId: {tick}"
    );
    assert!(tick.get("kind").is_none());
    assert_eq!(tick["traceId"].as_str().unwrap().len(), 32);
    assert_ne!(tick["traceId"], server["traceId"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsampled_traces_export_nothing_and_a_missing_collector_does_not_hang_shutdown() {
    let (addr, mut posted) = collector().await;
    let url = format!("http://{addr}/api/v2/spans").parse().unwrap();
    let tracing = ZipkinTracing::new("kit-test", url, 0.0);
    let tracer = tracing.provider().tracer("t");
    tracer.span_builder("dropped").start(&tracer).end();
    tracing.shutdown().await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), posted.recv())
            .await
            .is_err(),
        "ratio 0: nothing sampled, nothing sent"
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/api/v2/spans", closed.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(closed);
    let tracing = ZipkinTracing::new("kit-test", url, 1.0);
    let tracer = tracing.provider().tracer("t");
    tracer.span_builder("lost").start(&tracer).end();
    // The SDK logs the failed export; what matters here is that shutdown returns.
    let _ = tokio::time::timeout(Duration::from_secs(15), tracing.shutdown())
        .await
        .expect("shutdown ends even when the collector is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_spans_tag_business_errors_and_mark_failures() {
    use kit_core::{Chain, Context as KitContext, Endpoint, Error, Middleware, Named, endpoint_fn};
    let (addr, mut posted) = collector().await;
    let tracing = ZipkinTracing::new(
        "kit-test",
        format!("http://{addr}/api/v2/spans").parse().unwrap(),
        1.0,
    );
    let tracer = tracing.provider().tracer("t");
    let ep = Chain::new()
        .with(Named::new("sum"))
        .with(kit_trace::Tracing::new(tracer))
        .wrap(endpoint_fn(|cx: KitContext, n: i64| async move {
            // The endpoint runs in the span: it is the context's current span.
            assert!(kit_trace::current(&cx).is_some());
            match n {
                0 => Err(Error::business("can't sum two zeroes")),
                1 => Err(Error::unavailable("backend down")
                    .with_source(std::io::Error::other("connect 10.0.0.7:5432: refused"))),
                _ => Ok::<_, Error>(n),
            }
        }));
    assert!(ep.call(KitContext::new(), 0).await.is_err());
    assert!(ep.call(KitContext::new(), 1).await.is_err());
    assert_eq!(ep.call(KitContext::new(), 2).await.unwrap(), 2);
    tracing.shutdown().await.unwrap();
    // Batches may split: collect until the collector is quiet.
    let mut spans = Vec::new();
    while let Ok(Some((_, body))) =
        tokio::time::timeout(Duration::from_millis(500), posted.recv()).await
    {
        assert_eq!(errors_of(&body), Vec::<String>::new());
        spans.extend(body.as_array().unwrap().iter().cloned());
    }
    assert_eq!(spans.len(), 3);
    let by_kind = |kind: &str| {
        spans
            .iter()
            .find(|s| s["tags"]["kit.error.kind"] == kind)
            .unwrap()
    };
    let business = by_kind("business");
    assert_eq!(business["tags"]["kit.error"], "can't sum two zeroes");
    assert!(
        business["tags"].get("error").is_none(),
        "not a failure: {business}"
    );
    let failure = by_kind("unavailable");
    assert_eq!(failure["tags"]["error"], "backend down");
    // The detail the wire does not carry is in the trace.
    assert_eq!(
        failure["tags"]["kit.error.cause"],
        "connect 10.0.0.7:5432: refused"
    );
    assert!(
        spans.iter().any(|s| s.get("tags").is_none()),
        "the success has no error tags"
    );
}

/// A go-kit-style reply that carries its business error (the same reply every middleware's
/// carried-error test uses).
struct SumReply {
    v: i64,
    err: Option<String>,
}

impl kit_core::Failer for SumReply {
    fn failed(&self) -> Option<kit_core::Error> {
        self.err.clone().map(kit_core::Error::business)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_business_error_carried_in_a_reply_is_tagged_not_failed() {
    use kit_core::{
        Chain, Context as KitContext, Endpoint, Error, Failing, Middleware, Named, endpoint_fn,
    };
    let (addr, mut posted) = collector().await;
    let tracing = ZipkinTracing::new(
        "kit-test",
        format!("http://{addr}/api/v2/spans").parse().unwrap(),
        1.0,
    );
    let tracer = tracing.provider().tracer("t");
    let sum = Chain::new()
        .with(Named::new("sum"))
        .with(kit_trace::Tracing::new(tracer))
        .wrap(Failing::new(endpoint_fn(
            |_cx, (a, b): (i64, i64)| async move {
                Ok::<_, Error>(match (a, b) {
                    (0, 0) => SumReply {
                        v: 0,
                        err: Some("can't sum two zeroes".into()),
                    },
                    _ => SumReply {
                        v: a + b,
                        err: None,
                    },
                })
            },
        )));
    assert_eq!(sum.call(KitContext::new(), (1, 2)).await.unwrap().v, 3);
    let reply = sum.call(KitContext::new(), (0, 0)).await.unwrap();
    assert_eq!(reply.err.as_deref(), Some("can't sum two zeroes"));
    tracing.shutdown().await.unwrap();
    let mut spans = Vec::new();
    while let Ok(Some((_, body))) =
        tokio::time::timeout(Duration::from_millis(500), posted.recv()).await
    {
        assert_eq!(errors_of(&body), Vec::<String>::new());
        spans.extend(body.as_array().unwrap().iter().cloned());
    }
    assert_eq!(spans.len(), 2);
    let carried = spans
        .iter()
        .find(|s| s["tags"]["kit.error.kind"] == "business")
        .expect("the carried error is tagged");
    assert_eq!(carried["tags"]["kit.error"], "can't sum two zeroes");
    assert!(
        carried["tags"].get("error").is_none(),
        "not a failure: {carried}"
    );
    assert!(spans.iter().any(|s| s.get("tags").is_none()));
}

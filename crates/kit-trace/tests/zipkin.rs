//! The Zipkin exporter against a collector on loopback: every span it posts validates against
//! the Zipkin v2 API's schema (tests/data, rewritten from ../shared/data/zipkin-api), and parent
//! links, service names, kinds, remote endpoints and tags are what Zipkin needs to show them.

use std::net::SocketAddr;
use std::time::Duration;

use kit_trace::{Propagation, Tracing};
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// A Zipkin collector's HTTP side: `POST /api/v2/spans` answered 202, each body sent on.
async fn collector() -> (SocketAddr, mpsc::UnboundedReceiver<(String, Value)>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut request_line = String::new();
                    if stream.read_line(&mut request_line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    let mut content_type = String::new();
                    loop {
                        let mut line = String::new();
                        stream.read_line(&mut line).await.unwrap();
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap();
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.trim().parse().unwrap(),
                            "content-type" => content_type = value.trim().to_owned(),
                            _ => {}
                        }
                    }
                    let mut body = vec![0; length];
                    stream.read_exact(&mut body).await.unwrap();
                    assert_eq!(content_type, "application/json");
                    let path = request_line.split_whitespace().nth(1).unwrap().to_owned();
                    let _ = tx.send((path, serde_json::from_slice(&body).unwrap()));
                    stream
                        .get_mut()
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                        .await
                        .unwrap();
                }
            });
        }
    });
    (addr, rx)
}

/// The JSON Schema keywords the Zipkin schema uses, checked; the errors found.
fn validate(schema: &Value, root: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.trim_start_matches("#/definitions/");
        return validate(&root["definitions"][name], root, value, at, errors);
    }
    let mut fail = |why: String| errors.push(format!("{at}: {why}"));
    if let Some(ty) = schema.get("type").and_then(Value::as_str) {
        let ok = match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "boolean" => value.is_boolean(),
            other => panic!("type {other} not handled"),
        };
        if !ok {
            return fail(format!("{value} is not {ty}"));
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len < m)
        {
            fail(format!("{s:?} is too short"));
        }
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| len > m)
        {
            fail(format!("{s:?} is too long"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && !regex::Regex::new(pattern).unwrap().is_match(s)
        {
            fail(format!("{s:?} does not match {pattern}"));
        }
        match schema.get("format").and_then(Value::as_str) {
            Some("ipv4") if s.parse::<std::net::Ipv4Addr>().is_err() => {
                fail(format!("{s} not ipv4"))
            }
            Some("ipv6") if s.parse::<std::net::Ipv6Addr>().is_err() => {
                fail(format!("{s} not ipv6"))
            }
            _ => {}
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
            && !allowed.contains(value)
        {
            fail(format!("{s:?} is not one of {allowed:?}"));
        }
    }
    if let Some(n) = value.as_i64() {
        if schema
            .get("minimum")
            .and_then(Value::as_i64)
            .is_some_and(|m| n < m)
        {
            fail(format!("{n} is under the minimum"));
        }
        if schema
            .get("maximum")
            .and_then(Value::as_i64)
            .is_some_and(|m| n > m)
        {
            fail(format!("{n} is over the maximum"));
        }
    }
    if let Some(items) = value.as_array()
        && let Some(item_schema) = schema.get("items")
    {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, root, item, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !object.contains_key(required.as_str().unwrap()) {
                errors.push(format!("{at}: {required} is missing"));
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        for (key, field) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(field_schema) => {
                    validate(field_schema, root, field, &format!("{at}.{key}"), errors)
                }
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{at}: unknown field {key}")),
                    Some(extra) if extra.is_object() => {
                        validate(extra, root, field, &format!("{at}.{key}"), errors)
                    }
                    _ => {}
                },
            }
        }
    }
}

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/zipkin2-span.schema.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn errors_of(spans: &Value) -> Vec<String> {
    let schema = schema();
    let mut errors = Vec::new();
    validate(
        &schema["definitions"]["ListOfSpans"],
        &schema,
        spans,
        "spans",
        &mut errors,
    );
    errors
}

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
    let tracing = Tracing::zipkin("kit-test", url, 1.0);
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
async fn unsampled_traces_export_nothing_and_a_missing_collector_is_an_error_not_a_hang() {
    let (addr, mut posted) = collector().await;
    let url = format!("http://{addr}/api/v2/spans").parse().unwrap();
    let tracing = Tracing::zipkin("kit-test", url, 0.0);
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
    let tracing = Tracing::zipkin("kit-test", url, 1.0);
    let tracer = tracing.provider().tracer("t");
    tracer.span_builder("lost").start(&tracer).end();
    let shutdown = tokio::time::timeout(Duration::from_secs(15), tracing.shutdown())
        .await
        .expect("shutdown ends even when the collector is gone");
    // The SDK reports the failed export on shutdown, or logs it; either way nothing hangs.
    let _ = shutdown;
}

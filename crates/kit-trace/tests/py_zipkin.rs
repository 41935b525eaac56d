//! Interop with a non-Rust Zipkin peer: a Python client instrumented with py_zipkin sends its
//! B3 headers to a kit HTTP server, whose span continues the same trace with the client's span
//! as parent. Also: hostile trace headers are ignored, a new trace starts, and the request
//! still succeeds.

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use kit_core::{Context, Error, endpoint_fn};
use kit_trace::ServerTracing;
use kit_trace::ZipkinTracing;
use kit_transport_http::{Listener, Router, Server, ServerOptions};
use opentelemetry::trace::TracerProvider;
use serde_json::Value;

mod support;

use support::{collector, errors_of, spans_posted};

/// A Python with py_zipkin: `KIT_PYTHON`, the venv `.ci/test` makes, or `python3`. Missing:
/// under `CI=true` the test fails; elsewhere it prints a visible skip line.
fn python() -> Option<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let found = [
        std::env::var_os("KIT_PYTHON").map(PathBuf::from),
        Some(workspace.join("target/pyvenv/bin/python")),
        Some(PathBuf::from("python3")),
    ]
    .into_iter()
    .flatten()
    .find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import py_zipkin"])
            .output()
            .is_ok_and(|out| out.status.success())
    });
    if found.is_none() {
        let why = "no Python with py_zipkin (.ci/test installs it in target/pyvenv)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIPPED: {why}");
    }
    found
}

/// A traced kit HTTP server on loopback, `POST /echo` answering the body, exporting its spans
/// as "kit-server" to the collector at `collector_addr`.
async fn traced_echo(
    collector_addr: std::net::SocketAddr,
) -> (ZipkinTracing, std::net::SocketAddr) {
    let tracing = ZipkinTracing::new(
        "kit-server",
        format!("http://{collector_addr}/api/v2/spans")
            .parse()
            .unwrap(),
        1.0,
    );
    let server = Server::new(
        endpoint_fn(|_cx: Context, body: Bytes| async move { Ok::<_, Error>(body) }),
        |_cx, r: &Request<Bytes>| Ok(r.body().clone()),
        |_cx, body: Bytes| Ok(Response::new(body)),
    )
    .options(
        ServerTracing::new(tracing.provider().tracer("kit")).http_options(ServerOptions::new()),
    );
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    tokio::spawn(listener.serve(Router::new().post("/echo", server), std::future::pending()));
    (tracing, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_py_zipkin_client_trace_continues_in_a_kit_server() {
    let Some(python) = python() else { return };
    let (collector_addr, mut posted) = collector().await;
    let (tracing, addr) = traced_echo(collector_addr).await;

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/client.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{addr}/echo"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["body"], "py");
    let py_span = &report["spans"][0];
    assert_eq!(py_span["localEndpoint"]["serviceName"], "py-client");
    assert_eq!(report["headers"]["X-B3-SpanId"], py_span["id"]);

    tracing.shutdown().await.unwrap();
    let (_, body) = tokio::time::timeout(Duration::from_secs(5), posted.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(errors_of(&body), Vec::<String>::new(), "{body:#}");
    let server_span = &body[0];
    assert_eq!(server_span["kind"], "SERVER");
    assert_eq!(
        server_span["traceId"], py_span["traceId"],
        "the same trace: {server_span}"
    );
    assert_eq!(
        server_span["parentId"], py_span["id"],
        "the client's span is the parent"
    );
    assert_eq!(server_span["localEndpoint"]["serviceName"], "kit-server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_trace_headers_start_a_new_trace_and_the_request_succeeds() {
    let (collector_addr, mut posted) = collector().await;
    let (tracing, addr) = traced_echo(collector_addr).await;

    let huge = "f".repeat(8000);
    let hostile: Vec<(&str, String)> = vec![
        ("traceparent", "00-zzzz-xxxx-01".into()),
        ("traceparent", format!("00-{huge}-{huge}-01")),
        ("b3", "ffffffffffffffffffffffffffffffffffffffff-1-1".into()),
        ("x-b3-traceid", huge.clone()),
        ("b3", "0000000000000000-0000000000000000-1".into()),
    ];
    for (name, value) in &hostile {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = format!(
            "POST /echo HTTP/1.1\r\nHost: k\r\n{name}: {value}\r\nx-b3-spanid: a2fb4a1d1a96d312\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{name}: {response}");
        assert!(response.ends_with("ok"), "{name}");
    }
    tracing.shutdown().await.unwrap();
    let spans = spans_posted(&mut posted).await;
    assert_eq!(spans.len(), hostile.len());
    for span in &spans {
        assert!(span.get("parentId").is_none(), "a new trace: {span}");
        assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
    }
}

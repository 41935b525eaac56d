//! One trace across an HTTP hop and a gRPC hop, over real loopback connections: a caller's
//! CLIENT span → the frontend's HTTP SERVER span → its endpoint span → its gRPC CLIENT span →
//! the backend's gRPC SERVER span. Every span reaches the collector, validates against the
//! Zipkin v2 schema, and has the right parent, kind and service.

use bytes::Bytes;
use http::{Method, Request, Response};
use kit_core::{BoxEndpoint, Chain, Context, Endpoint, Error, Middleware, Named, endpoint_fn};
use kit_trace::{Propagation, ServerTracing, Tracing, ZipkinTracing, grpc, http as trace_http};
use kit_transport_grpc::{
    Client as GrpcClient, Listener as GrpcListener, Server as GrpcServer,
    ServerOptions as GrpcServerOptions,
};
use kit_transport_http::{Client as HttpClient, Listener, Router, Server, ServerOptions};
use opentelemetry::trace::TracerProvider;
use serde_json::Value;
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status};
use tonic_health::pb::health_server::{Health as HealthApi, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

mod support;

use support::{collector, spans_posted};

type CheckServer =
    GrpcServer<BoxEndpoint<String, i32>, HealthCheckRequest, HealthCheckResponse, String, i32>;

/// The backend: grpc.health.v1.Health/Check served by a kit endpoint (any generated service
/// would do; this one ships with tonic-health).
struct Backend {
    check: CheckServer,
}

#[tonic::async_trait]
impl HealthApi for Backend {
    async fn check(
        &self,
        request: GrpcRequest<HealthCheckRequest>,
    ) -> Result<GrpcResponse<HealthCheckResponse>, Status> {
        self.check.serve(request).await
    }

    type WatchStream = tonic::codegen::tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: GrpcRequest<HealthCheckRequest>,
    ) -> Result<GrpcResponse<Self::WatchStream>, Status> {
        Err(Status::unimplemented("not here"))
    }
}

/// A traced caller that POSTs a string to `url` and reads the answer as text, its CLIENT span
/// named `name` and its context injected into the request's headers.
fn traced_post(
    tracer: opentelemetry_sdk::trace::SdkTracer,
    name: &'static str,
    url: &str,
) -> impl Endpoint<String, Response = String> {
    Tracing::client(tracer, name).wrap(
        HttpClient::new(
            Method::POST,
            url.parse().unwrap(),
            |_cx, body: String, request: &mut Request<Bytes>| {
                *request.body_mut() = Bytes::from(body);
                Ok(())
            },
            |_cx, response: Response<Bytes>| {
                Ok(String::from_utf8_lossy(response.body()).into_owned())
            },
        )
        .before(trace_http::inject(Propagation::default())),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_an_http_hop_and_a_grpc_hop() {
    let (addr, mut posted) = collector().await;
    let spans_url = || format!("http://{addr}/api/v2/spans").parse().unwrap();
    let caller = ZipkinTracing::new("caller", spans_url(), 1.0);
    let frontend = ZipkinTracing::new("frontend", spans_url(), 1.0);
    let backend = ZipkinTracing::new("backend", spans_url(), 1.0);

    // The backend, over gRPC.
    let backend_tracer = backend.provider().tracer("backend");
    let check = GrpcServer::new(
        BoxEndpoint::new(endpoint_fn(|_cx: Context, service: String| async move {
            if service == "broken" {
                return Err(Error::internal("backend broke"));
            }
            Ok::<_, Error>(1)
        })),
        |_cx, r: HealthCheckRequest| Ok(r.service),
        |_cx, status: i32| Ok(HealthCheckResponse { status }),
    )
    .options(ServerTracing::new(backend_tracer).grpc_options(GrpcServerOptions::new()));
    let grpc_listener = GrpcListener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let grpc_addr = grpc_listener.local_addr();
    let routes = kit_transport_grpc::Routes::new(HealthServer::new(Backend { check }));
    tokio::spawn(grpc_listener.serve(routes, std::future::pending()));

    // The frontend, over HTTP: its endpoint calls the backend.
    let frontend_tracer = frontend.provider().tracer("frontend");
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .connect_lazy();
    let to_backend = GrpcClient::new(
        channel,
        "/grpc.health.v1.Health/Check",
        |_cx, service: String| Ok(HealthCheckRequest { service }),
        |_cx, reply: HealthCheckResponse| Ok(reply.status),
    )
    .unwrap()
    .before(grpc::inject(Propagation::default()));
    let to_backend =
        Tracing::client(frontend_tracer.clone(), "grpc.health.v1.Health/Check").wrap(to_backend);
    let endpoint = Chain::new()
        .with(Named::new("status"))
        .with(Tracing::new(frontend_tracer.clone()))
        .wrap(endpoint_fn(move |cx: Context, service: String| {
            let to_backend = to_backend.clone();
            async move { to_backend.call(cx, service).await }
        }));
    let server = Server::new(
        endpoint,
        |_cx, r: &Request<Bytes>| Ok(String::from_utf8_lossy(r.body()).into_owned()),
        |_cx, status: i32| Ok(Response::new(Bytes::from(status.to_string()))),
    )
    .options(ServerTracing::new(frontend_tracer).http_options(ServerOptions::new()));
    let http_listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let http_addr = http_listener.local_addr();
    tokio::spawn(http_listener.serve(
        Router::new().post("/status", server),
        std::future::pending(),
    ));

    // The caller.
    let caller_tracer = caller.provider().tracer("caller");
    let call = traced_post(
        caller_tracer,
        "post /status",
        &format!("http://{http_addr}/status"),
    );
    assert_eq!(call.call(Context::new(), "kit".into()).await.unwrap(), "1");
    let err = call
        .call(Context::new(), "broken".into())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), kit_core::ErrorKind::Internal, "{err}");

    for tracing in [caller, frontend, backend] {
        tracing.shutdown().await.unwrap();
    }
    let spans = spans_posted(&mut posted).await;
    assert_eq!(spans.len(), 10, "5 spans per call: {spans:#?}");

    // The first call's trace, link by link.
    let root = spans
        .iter()
        .find(|s| s.get("parentId").is_none() && s["tags"].get("error").is_none())
        .cloned()
        .unwrap();
    let trace: Vec<&Value> = spans
        .iter()
        .filter(|s| s["traceId"] == root["traceId"])
        .collect();
    assert_eq!(trace.len(), 5);
    let child_of = |parent: &Value, service: &str, kind: Option<&str>| -> Value {
        let found = trace
            .iter()
            .find(|s| s["parentId"] == parent["id"])
            .unwrap_or_else(|| panic!("no child of {parent}"));
        assert_eq!(found["localEndpoint"]["serviceName"], service, "{found}");
        assert_eq!(found.get("kind").and_then(Value::as_str), kind, "{found}");
        (*found).clone()
    };
    assert_eq!(root["kind"], "CLIENT");
    let http_server = child_of(&root, "frontend", Some("SERVER"));
    assert_eq!(http_server["name"], "post /status");
    assert_eq!(http_server["remoteEndpoint"]["ipv4"], "127.0.0.1");
    let endpoint = child_of(&http_server, "frontend", None);
    assert_eq!(endpoint["name"], "status");
    let grpc_client = child_of(&endpoint, "frontend", Some("CLIENT"));
    let grpc_server = child_of(&grpc_client, "backend", Some("SERVER"));
    assert_eq!(grpc_server["name"], "grpc.health.v1.health/check");
    assert_eq!(grpc_server["tags"]["rpc.grpc.status_code"], "0");

    // The second call failed in the backend (a fault, INTERNAL): its server span and every
    // span above it, through the HTTP 500, are errors.
    let failed: Vec<&Value> = spans
        .iter()
        .filter(|s| s["traceId"] != root["traceId"])
        .collect();
    assert_eq!(failed.len(), 5);
    for span in &failed {
        assert!(span["tags"].get("error").is_some(), "{span}");
    }
    let backend_span = failed
        .iter()
        .find(|s| s["localEndpoint"]["serviceName"] == "backend")
        .unwrap();
    assert_eq!(backend_span["tags"]["rpc.grpc.status_code"], "13");
    assert_eq!(backend_span["tags"]["error"], "backend broke");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_rpc_requests_get_server_spans_from_the_same_entry_point() {
    use kit_transport_http::jsonrpc::{
        JsonRpcClient, JsonRpcServer, decode_params, decode_result, encode_params, encode_result,
    };
    let (addr, mut posted) = collector().await;
    let spans_url = || format!("http://{addr}/api/v2/spans").parse().unwrap();
    let caller = ZipkinTracing::new("caller", spans_url(), 1.0);
    let rpc = ZipkinTracing::new("rpc", spans_url(), 1.0);

    // The JSON-RPC server, traced by the options its HTTP servers would share.
    let tracer = rpc.provider().tracer("rpc");
    let sum = Chain::new()
        .with(Named::new("sum"))
        .with(Tracing::new(tracer.clone()))
        .wrap(endpoint_fn(|_cx: Context, (a, b): (i64, i64)| async move {
            Ok::<_, Error>(a + b)
        }));
    let server = JsonRpcServer::new()
        .method("sum", sum, decode_params, encode_result)
        .options(ServerTracing::new(tracer).http_options(ServerOptions::new()));
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let rpc_addr = listener.local_addr();
    tokio::spawn(listener.serve(server, std::future::pending()));

    // A traced caller POSTs one call, then a batch of two.
    // One call through kit's JSON-RPC client, its before hook injecting the trace context.
    let url = format!("http://{rpc_addr}/rpc");
    let caller_tracer = caller.provider().tracer("caller");
    let sum = Tracing::client(caller_tracer.clone(), "sum").wrap(
        JsonRpcClient::new(
            url.parse().unwrap(),
            "sum",
            encode_params,
            decode_result::<i64>,
        )
        .before(trace_http::inject(Propagation::default())),
    );
    assert_eq!(sum.call(Context::new(), (1, 2)).await.unwrap(), 3);
    // A batch of two, POSTed by hand (the client sends one call per request).
    let call = traced_post(caller_tracer, "rpc", &url);
    let one = r#"{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}"#;
    let two = format!("[{one},{}]", one.replace("[1,2]", "[3,4]"));
    let answer = call.call(Context::new(), two).await.unwrap();
    assert!(answer.contains(r#""result":7"#), "{answer}");

    for tracing in [caller, rpc] {
        tracing.shutdown().await.unwrap();
    }
    let spans = spans_posted(&mut posted).await;
    // Per request: the caller's CLIENT span, the server's SERVER span, an endpoint span per call.
    assert_eq!(spans.len(), 3 + 4, "{spans:#?}");
    let children = |parent: &Value| -> Vec<Value> {
        spans
            .iter()
            .filter(|s| s["parentId"] == parent["id"] && s["traceId"] == parent["traceId"])
            .cloned()
            .collect()
    };
    let roots: Vec<&Value> = spans
        .iter()
        .filter(|s| s.get("parentId").is_none())
        .collect();
    assert_eq!(roots.len(), 2, "{spans:#?}");
    let mut calls_per_request = Vec::new();
    for root in roots {
        assert_eq!(root["kind"], "CLIENT");
        let servers = children(root);
        assert_eq!(servers.len(), 1, "{servers:#?}");
        let server = &servers[0];
        assert_eq!(server["kind"], "SERVER");
        assert_eq!(server["name"], "post /rpc");
        assert_eq!(server["localEndpoint"]["serviceName"], "rpc");
        assert_eq!(server["tags"]["http.response.status_code"], "200");
        let endpoints = children(server);
        assert!(
            endpoints.iter().all(|e| e["name"] == "sum"),
            "{endpoints:#?}"
        );
        calls_per_request.push(endpoints.len());
    }
    calls_per_request.sort();
    assert_eq!(calls_per_request, [1, 2]);
}

//! Per-request cost of the kit server path without the network: a `POST /sum` JSON request
//! through a Router and Server as a tower service, beside a plain async function doing the same
//! JSON work (read the body, parse, add, serialize, build the response).

use std::convert::Infallible;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use kit_core::{Error, endpoint_fn};
use kit_transport_http::{Router, Server, json};
use serde::{Deserialize, Serialize};
use tower::ServiceExt;

#[derive(Deserialize)]
struct SumRequest {
    a: i64,
    b: i64,
}

#[derive(Serialize)]
struct SumResponse {
    v: i64,
}

fn sum(r: SumRequest) -> Result<SumResponse, Error> {
    r.a.checked_add(r.b)
        .map(|v| SumResponse { v })
        .ok_or_else(|| Error::business("integer overflow"))
}

async fn raw(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (status, body) = match serde_json::from_slice::<SumRequest>(&body) {
        Ok(r) => match sum(r) {
            Ok(v) => (StatusCode::OK, serde_json::to_vec(&v).unwrap_or_default()),
            Err(e) => (
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": e.message()})
                    .to_string()
                    .into_bytes(),
            ),
        },
        Err(e) => (
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": e.to_string()})
                .to_string()
                .into_bytes(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    Ok(response)
}

fn request() -> Request<Full<Bytes>> {
    Request::post("/sum")
        .header(header::HOST, "127.0.0.1:8081")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from_static(br#"{"a":1,"b":2}"#)))
        .expect("a valid request")
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let endpoint = endpoint_fn(|_cx, r: SumRequest| async move { sum(r) });
    let server = Server::new(endpoint, json::decode_request, json::encode_response);
    let router = Router::new().post("/sum", server.clone());
    let mut g = c.benchmark_group("handler");
    g.bench_function("raw_fn", |b| b.iter(|| rt.block_on(raw(request()))));
    g.bench_function("kit_server", |b| {
        b.iter(|| rt.block_on(server.clone().oneshot(request())))
    });
    g.bench_function("kit_router", |b| {
        b.iter(|| rt.block_on(router.clone().oneshot(request())))
    });
    g.finish();
}

criterion_group!(handler, benches);
criterion_main!(handler);

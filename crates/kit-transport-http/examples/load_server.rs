//! The two servers of the HTTP load benchmark (`benches/load.sh`), doing the same JSON work:
//! `POST /sum` with `{"a":1,"b":2}` answers `{"v":3}`.
//!
//! `load_server kit ADDR` serves it through kit-transport-http (Listener, Router, Server, the
//! JSON codecs, a kit endpoint); `load_server raw ADDR` through hyper alone (hyper-util's
//! auto connection builder with its defaults, a `service_fn`, serde_json), the baseline;
//! `load_server raw-limits ADDR` is the same raw server with the limits a kit Listener sets.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use kit_core::{Error, endpoint_fn};
use kit_transport_http::{Listener, Router, Server, json};
use serde::{Deserialize, Serialize};

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

async fn kit(addr: SocketAddr) -> std::io::Result<()> {
    let endpoint = endpoint_fn(|_cx, r: SumRequest| async move { sum(r) });
    let router = Router::new().post(
        "/sum",
        Server::new(endpoint, json::decode_request, json::encode_response),
    );
    Listener::bind(addr)
        .await?
        .serve(router, std::future::pending())
        .await
}

async fn raw_sum(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let json = |status: StatusCode, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        Ok(response)
    };
    if request.method() != http::Method::POST || request.uri().path() != "/sum" {
        return json(StatusCode::NOT_FOUND, br#"{"error":"not found"}"#.to_vec());
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return json(StatusCode::BAD_REQUEST, br#"{"error":"bad body"}"#.to_vec()),
    };
    match serde_json::from_slice::<SumRequest>(&body).map_err(|e| e.to_string()) {
        Ok(r) => match sum(r) {
            Ok(v) => json(StatusCode::OK, serde_json::to_vec(&v).unwrap_or_default()),
            Err(e) => json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"error": e.message()})
                    .to_string()
                    .into_bytes(),
            ),
        },
        Err(e) => json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"error": e}).to_string().into_bytes(),
        ),
    }
}

/// Raw hyper; with `same_limits`, configured with the limits a kit Listener sets by default
/// (header read timeout 10 s, keep-alive, 64 KiB of headers; TCP keep-alive is set once on the
/// listening socket and costs nothing per request), so that the comparison isolates what kit
/// adds above hyper.
async fn raw(addr: SocketAddr, same_limits: bool) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    if same_limits {
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(std::time::Duration::from_secs(10))
            .keep_alive(true)
            .max_buf_size(64 * 1024);
        builder
            .http2()
            .timer(hyper_util::rt::TokioTimer::new())
            .max_header_list_size(64 * 1024);
    }
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = builder
                .serve_connection(io, hyper::service::service_fn(raw_sum))
                .await;
        });
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (which, addr) = match args.as_slice() {
        [_, which, addr] => (
            which.as_str(),
            addr.parse().expect("ADDR like 127.0.0.1:8081"),
        ),
        _ => {
            eprintln!("usage: load_server kit|raw|raw-limits ADDR");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match which {
            "kit" => kit(addr).await,
            "raw" => raw(addr, false).await,
            "raw-limits" => raw(addr, true).await,
            other => {
                eprintln!("unknown server {other:?}: kit, raw or raw-limits");
                std::process::exit(2);
            }
        }
    })
}

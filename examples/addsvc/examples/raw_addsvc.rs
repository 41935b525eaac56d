//! The baselines of addsvc's benchmark (bench/compare.sh): addsvc's Sum and Concat with its
//! rules and wire contract, served by raw hyper (HTTP/1.1 and h2c, `POST /sum` and
//! `POST /concat`, JSON) and raw tonic (`pb.Add`), with no kit code on the request path and no
//! logging or metrics: what addsvc would cost with nothing of the kit's.
//!
//! `raw_addsvc HTTP_ADDR GRPC_ADDR`

use std::convert::Infallible;
use std::net::SocketAddr;

use addsvc::pb;
use addsvc::service::{concat, sum};
use addsvc::transport::Members;
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Serialize;
use serde_json::json;

fn reply(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn error(message: &str) -> Response<Full<Bytes>> {
    let body = json!({ "error": message }).to_string();
    reply(StatusCode::BAD_REQUEST, Bytes::from(body))
}

/// A reply's JSON, `{"v":..}`.
#[derive(Serialize)]
struct V<T> {
    v: T,
}

fn answer<T: Serialize>(result: Result<T, kit_core::Error>) -> Response<Full<Bytes>> {
    match result {
        Ok(v) => reply(
            StatusCode::OK,
            Bytes::from(serde_json::to_vec(&V { v }).expect("a number or a string encodes")),
        ),
        Err(business) => error(business.message()),
    }
}

async fn http(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let Ok(body) = request.into_body().collect().await else {
        return Ok(error("bad body"));
    };
    let body = body.to_bytes();
    // The same decoding addsvc does (go-kit's members, straight from the text).
    Ok(match path.as_str() {
        "/sum" => match serde_json::from_slice::<Members<i64>>(&body) {
            Ok(r) => answer(sum(r.a, r.b)),
            Err(bad) => error(&bad.to_string()),
        },
        "/concat" => match serde_json::from_slice::<Members<String>>(&body) {
            Ok(r) => answer(concat(&r.a, &r.b)),
            Err(bad) => error(&bad.to_string()),
        },
        _ => error("no such path"),
    })
}

struct RawAdd;

#[tonic::async_trait]
impl pb::add_server::Add for RawAdd {
    async fn sum(
        &self,
        request: tonic::Request<pb::SumRequest>,
    ) -> Result<tonic::Response<pb::SumReply>, tonic::Status> {
        let r = request.into_inner();
        Ok(tonic::Response::new(match sum(r.a, r.b) {
            Ok(v) => pb::SumReply {
                v,
                err: String::new(),
            },
            Err(e) => pb::SumReply {
                v: 0,
                err: e.message().to_owned(),
            },
        }))
    }

    async fn concat(
        &self,
        request: tonic::Request<pb::ConcatRequest>,
    ) -> Result<tonic::Response<pb::ConcatReply>, tonic::Status> {
        let r = request.into_inner();
        Ok(tonic::Response::new(match concat(&r.a, &r.b) {
            Ok(v) => pb::ConcatReply {
                v,
                err: String::new(),
            },
            Err(e) => pb::ConcatReply {
                v: String::new(),
                err: e.message().to_owned(),
            },
        }))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let http_addr: SocketAddr = args.next().ok_or("HTTP_ADDR GRPC_ADDR")?.parse()?;
    let grpc_addr: SocketAddr = args.next().ok_or("HTTP_ADDR GRPC_ADDR")?.parse()?;
    let listener = tokio::net::TcpListener::bind(http_addr).await?;
    tokio::spawn(async move {
        let builder = auto::Builder::new(TokioExecutor::new());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let builder = builder.clone();
            tokio::spawn(async move {
                let _ = builder
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(http))
                    .await;
            });
        }
    });
    tonic::transport::Server::builder()
        .add_service(pb::add_server::AddServer::new(RawAdd))
        .serve(grpc_addr)
        .await?;
    Ok(())
}

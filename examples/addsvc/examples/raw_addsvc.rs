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
use bytes::Bytes;
use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

async fn http(
    request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let Ok(body) = request.into_body().collect().await else {
        return Ok(reply(StatusCode::BAD_REQUEST, json!({"error": "bad body"})));
    };
    // The same decoding addsvc does (members matched ignoring case, absent ones zero).
    let decoded = serde_json::from_slice::<Value>(&body.to_bytes())
        .map_err(|e| e.to_string())
        .and_then(|v| match path.as_str() {
            "/sum" => addsvc::transport::sum_request(v)
                .map_err(|e| e.to_string())
                .map(|r| sum(r.a, r.b).map(Value::from)),
            "/concat" => addsvc::transport::concat_request(v)
                .map_err(|e| e.to_string())
                .map(|r| concat(&r.a, &r.b).map(Value::from)),
            _ => Err("no such path".to_owned()),
        });
    Ok(match decoded {
        Ok(Ok(v)) => reply(StatusCode::OK, json!({ "v": v })),
        Ok(Err(business)) => reply(
            StatusCode::BAD_REQUEST,
            json!({ "error": business.message() }),
        ),
        Err(bad) => reply(StatusCode::BAD_REQUEST, json!({ "error": bad })),
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

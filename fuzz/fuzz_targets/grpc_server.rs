//! A kit gRPC server (the wire layer's framing and size limit, tonic's decoding, the kit
//! adapter's `grpc-timeout` and metadata reading, the endpoint, status encoding) answering any
//! request body and any `grpc-timeout`: a gRPC status, never a panic.
#![no_main]

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kit_core::{BoxEndpoint, Error, endpoint_fn};
use kit_transport_grpc::{Server, WireLayer};
use libfuzzer_sys::fuzz_target;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower::{Layer, Service, ServiceExt};

type CheckServer =
    Server<BoxEndpoint<String, i32>, HealthCheckRequest, HealthCheckResponse, String, i32>;

struct Check(CheckServer);

#[tonic::async_trait]
impl Health for Check {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.0.serve(request).await
    }

    type WatchStream = tonic::codegen::tokio_stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("no watch"))
    }
}

fuzz_target!(|data: &[u8]| {
    // The first byte says how many of the next bytes are the grpc-timeout value.
    let (timeout, body) = match data.split_first() {
        Some((n, rest)) => rest.split_at(usize::from(*n).min(rest.len())),
        None => (&[][..], data),
    };
    let check = endpoint_fn(|_cx, service: String| async move {
        match service.as_str() {
            "" => Ok(1),
            "fail" => Err(Error::internal("failed")),
            _ => Err(Error::not_found("no such service")),
        }
    });
    let server = Server::new(
        BoxEndpoint::new(check),
        |_cx, r: HealthCheckRequest| Ok(r.service),
        |_cx, status: i32| Ok(HealthCheckResponse { status }),
    );
    let mut service = WireLayer::new(4096).layer(HealthServer::new(Check(server)));
    let mut request = http::Request::post("/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Full::new(Bytes::copy_from_slice(
            body,
        ))))
        .unwrap();
    if let Ok(value) = http::HeaderValue::from_bytes(timeout) {
        request.headers_mut().insert("grpc-timeout", value);
    }
    kit_fuzz::block_on(async {
        let service = service.ready().await.unwrap();
        let response = service.call(request).await.unwrap();
        assert_eq!(response.status(), 200);
        let has_status = response.headers().contains_key("grpc-status");
        let collected = response.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap_or_default();
        assert!(has_status || trailers.contains_key("grpc-status"));
    });
});

//! The debug listener's handler: `/metrics`, `/healthz`, `/readyz`.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use kit_metrics::prometheus::{PrometheusHandler, Registry};

use crate::Health;

/// A tower service for a debug port (go-kit's `debug.addr`):
///
/// - `GET /metrics`: the Prometheus text exposition of the registry given;
/// - `GET /healthz`: liveness, `200 ok` while the process serves;
/// - `GET /readyz`: readiness, `200 ready`, or `503 not ready` (while draining, say);
/// - anything else: `404`, or `405` for another method on those paths.
///
/// Serve it with a kit-transport-http `Listener`, and spawn that as an
/// [observer](crate::Group::spawn_observer) so that it answers through the drain.
#[derive(Clone, Debug)]
pub struct DebugHandler {
    health: Health,
    metrics: Option<PrometheusHandler>,
}

impl DebugHandler {
    /// Serves `health`, and no metrics.
    pub fn new(health: Health) -> Self {
        DebugHandler {
            health,
            metrics: None,
        }
    }

    /// Serves `registry` at `/metrics`.
    pub fn metrics(mut self, registry: Registry) -> Self {
        self.metrics = Some(PrometheusHandler::new(registry));
        self
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl<B: Send + 'static> tower_service::Service<Request<B>> for DebugHandler {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let path = request.uri().path();
        let known = matches!(path, "/healthz" | "/readyz")
            || (path == "/metrics" && self.metrics.is_some());
        if !known {
            return ready(Ok(text(StatusCode::NOT_FOUND, "not found\n")));
        }
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
            return ready(Ok(response));
        }
        ready(Ok(match path {
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if self.health.is_ready() => text(StatusCode::OK, "ready\n"),
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            _ => match &mut self.metrics {
                Some(metrics) => match metrics.call(request).into_inner() {
                    Ok(response) => response,
                },
                None => text(StatusCode::NOT_FOUND, "not found\n"),
            },
        }))
    }
}

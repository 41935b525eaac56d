//! Tracing over kit-transport-grpc (feature `grpc`): SERVER spans from a server's hooks, and
//! trace context injected into a client's metadata.

use std::borrow::Cow;
use std::sync::Arc;

use http::HeaderMap;
use kit_core::{Context, Endpoint};
use kit_transport_grpc::{Server, error_from_status};
use opentelemetry::trace::{Span as _, SpanKind, Status};
use opentelemetry_sdk::trace::SdkTracer;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use crate::Propagation;
use crate::span::{current, end_open, start, tag, with_open};

/// SERVER spans for one method of a kit-transport-grpc server:
/// [`server`](GrpcServerTracing::server) adds a before hook, which continues the caller's trace
/// from its metadata (B3 or W3C) or starts one, and a finalizer, which ends the span with the
/// status code. A status that is the server's fault (`INTERNAL`, `UNAVAILABLE`, `UNKNOWN`, ...)
/// marks the span as an error; the caller's mistakes and business errors are only tagged.
#[derive(Clone, Debug)]
pub struct GrpcServerTracing {
    tracer: SdkTracer,
    method: Cow<'static, str>,
    propagation: Arc<Propagation>,
}

impl GrpcServerTracing {
    /// Spans named `method` (`pb.Add/Sum`) from `tracer`.
    pub fn new(tracer: SdkTracer, method: impl Into<Cow<'static, str>>) -> Self {
        GrpcServerTracing {
            tracer,
            method: method.into(),
            propagation: Arc::new(Propagation::default()),
        }
    }

    /// Reads the caller's context with `propagation`: on a public edge,
    /// `Propagation::default().trust_sampling(false)`, so that callers cannot force sampling.
    pub fn propagation(mut self, propagation: Propagation) -> Self {
        self.propagation = Arc::new(propagation);
        self
    }

    /// `server` with the tracing hooks added.
    pub fn server<E, PReq, PResp, Req, Resp>(
        &self,
        server: Server<E, PReq, PResp, Req, Resp>,
    ) -> Server<E, PReq, PResp, Req, Resp>
    where
        E: Endpoint<Req, Response = Resp>,
        PReq: Send + 'static,
        PResp: Send + 'static,
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        let this = self.clone();
        server
            .before(move |cx, metadata| {
                let parent = this
                    .propagation
                    .extract(metadata.as_ref())
                    .map(|e| e.span_context);
                let mut span = start(
                    &this.tracer,
                    this.method.clone(),
                    SpanKind::Server,
                    parent.as_ref(),
                );
                if span.is_recording() {
                    tag(&mut span, "rpc.system", "grpc");
                    tag(&mut span, "rpc.method", this.method.to_string());
                }
                with_open(cx, span)
            })
            .finalizer(|cx, outcome| {
                end_open(cx, |span| {
                    let code = match outcome {
                        Ok(()) => 0,
                        Err(status) => status.code() as i64,
                    };
                    tag(span, "rpc.grpc.status_code", code);
                    if let Err(status) = outcome
                        && error_from_status(status).is_failure()
                    {
                        span.set_status(Status::error(status.message().to_owned()));
                    }
                });
            })
    }
}

/// A kit-transport-grpc client's before hook that writes the context's current span (the
/// CLIENT span of [`Tracing::client`](crate::Tracing::client)) into the call's
/// metadata.
pub fn inject(
    propagation: Propagation,
) -> impl Fn(&Context, &mut MetadataMap) + Send + Sync + 'static {
    move |cx, metadata| {
        let Some(span) = current(cx) else { return };
        let mut headers = HeaderMap::new();
        propagation.inject(span, &mut headers);
        for (name, value) in &headers {
            if let (Ok(key), Ok(value)) = (
                MetadataKey::from_bytes(name.as_str().as_bytes()),
                value.to_str().map(MetadataValue::try_from),
            ) && let Ok(value) = value
            {
                metadata.insert(key, value);
            }
        }
    }
}

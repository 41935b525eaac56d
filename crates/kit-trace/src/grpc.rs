//! Tracing over kit-transport-grpc (feature `grpc`): SERVER spans from a server's hooks, and
//! trace context injected into a client's metadata.

use std::sync::Arc;

use http::HeaderMap;
use kit_core::Context;
use kit_transport_grpc::{ServerOptions, error_from_status};
use opentelemetry::trace::{Span as _, SpanKind, Status};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};

use crate::span::{current, end_open, start, tag, with_open};
use crate::{Propagation, ServerTracing};

impl ServerTracing {
    /// `options` with the tracing hooks added: a SERVER span named after the method called
    /// (`pb.Add/Sum`, from the call's `RequestInfo`; `grpc` when unknown), for every method's
    /// server given these options.
    pub fn grpc_options(&self, options: ServerOptions) -> ServerOptions {
        let (tracer, propagation) = (self.tracer.clone(), Arc::clone(&self.propagation));
        options
            .before(move |cx, call| {
                let parent = propagation
                    .extract(call.metadata().as_ref())
                    .map(|e| e.span_context);
                let mut span = start(&tracer, "grpc", SpanKind::Server, parent.as_ref());
                // Named only when it records: an unsampled call pays no allocation.
                if span.is_recording() {
                    let method = call.method().unwrap_or("grpc");
                    span.update_name(method.to_owned());
                    tag(&mut span, "rpc.system", "grpc");
                    tag(&mut span, "rpc.method", method.to_owned());
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

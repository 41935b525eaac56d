//! Tracing over kit-transport-http (feature `http`): SERVER spans from a server's hooks (HTTP and
//! JSON-RPC servers alike), and trace context injected by a client's before hook.

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use kit_core::Context;
use kit_transport_http::{RequestInfo, ServerOptions};
use opentelemetry::trace::{Span as _, SpanKind, Status};

use crate::span::{current, end_open, start, tag, with_open};
use crate::{PEER_ADDRESS, PEER_PORT, Propagation, ServerTracing};

impl ServerTracing {
    /// `options` with the tracing hooks added: a SERVER span named after the request's method
    /// and path (`POST /sum`), for every HTTP and JSON-RPC server given these options.
    pub fn http_options(&self, options: ServerOptions) -> ServerOptions {
        let (tracer, propagation) = (self.tracer.clone(), Arc::clone(&self.propagation));
        options
            .before(move |cx, parts| {
                let parent = propagation.extract(&parts.headers).map(|e| e.span_context);
                let mut span = start(&tracer, "http", SpanKind::Server, parent.as_ref());
                // Named only when it records: an unsampled request pays no formatting.
                if span.is_recording() {
                    span.update_name(format!("{} {}", parts.method, parts.uri.path()));
                    tag(&mut span, "http.request.method", parts.method.to_string());
                    tag(&mut span, "url.path", parts.uri.path().to_owned());
                }
                with_open(cx, span)
            })
            .finalizer(|cx, finished| {
                end_open(cx, |span| {
                    let status = finished.status.as_u16();
                    tag(span, "http.response.status_code", i64::from(status));
                    if status >= 500 {
                        span.set_status(Status::error(format!("HTTP {status}")));
                    }
                    if let Some(peer) = cx.get::<RequestInfo>().and_then(|r| r.remote_addr()) {
                        tag(span, PEER_ADDRESS, peer.ip().to_string());
                        tag(span, PEER_PORT, i64::from(peer.port()));
                    }
                });
            })
    }
}

/// A kit-transport-http client's before hook that writes the context's current span (the
/// CLIENT span of [`Tracing::client`](crate::Tracing::client)) into the
/// request headers.
pub fn inject(
    propagation: Propagation,
) -> impl Fn(&Context, &mut Request<Bytes>) + Send + Sync + 'static {
    move |cx, request| {
        if let Some(span) = current(cx) {
            propagation.inject(span, request.headers_mut());
        }
    }
}

//! Spans around kit calls: the current span carried in kit-core's [`Context`], and the
//! [`Tracing`] middleware.

use std::borrow::Cow;

use kit_core::{Context, Endpoint, Error, Middleware, Outcome};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry_sdk::trace::{SdkTracer, Span};

/// The attribute naming the peer's IP address; Zipkin's `remoteEndpoint`.
pub const PEER_ADDRESS: &str = "network.peer.address";
/// The attribute naming the peer's port.
pub const PEER_PORT: &str = "network.peer.port";
/// The attribute naming the peer's service, when known.
pub const PEER_SERVICE: &str = "peer.service";

/// The span a call runs in, as kit-core's context carries it: what child spans are parented on
/// and what clients inject; and, for a span a transport's before hook started and its finalizer
/// ends, the span itself (only when it records: an unsampled span needs no ending).
struct Current {
    span_context: SpanContext,
    // Boxed: a recording span is large, and unsampled calls should not carry its size. Only
    // the transports' hooks (features `http`, `grpc`) open spans that end later.
    #[cfg_attr(not(any(feature = "http", feature = "grpc")), allow(dead_code))]
    open: Option<Box<std::sync::Mutex<Option<Span>>>>,
}

/// The span the call in `cx` runs in, if it is traced.
pub fn current(cx: &Context) -> Option<&SpanContext> {
    cx.get::<Current>().map(|c| &c.span_context)
}

/// `cx` with `span` as its current span.
pub fn with_current(cx: Context, span: SpanContext) -> Context {
    cx.with_value(Current {
        span_context: span,
        open: None,
    })
}

/// `cx` with `span` as its current span, kept open for [`end_open`].
#[cfg(any(feature = "http", feature = "grpc"))]
pub(crate) fn with_open(cx: Context, span: Span) -> Context {
    let span_context = span.span_context().clone();
    let open = span
        .is_recording()
        .then(|| Box::new(std::sync::Mutex::new(Some(span))));
    cx.with_value(Current { span_context, open })
}

/// Ends the span [`with_open`] left in `cx`, once, after `f` has recorded what the finalizer
/// knows.
#[cfg(any(feature = "http", feature = "grpc"))]
pub(crate) fn end_open(cx: &Context, f: impl FnOnce(&mut Span)) {
    let Some(open) = cx.get::<Current>().and_then(|c| c.open.as_ref()) else {
        return;
    };
    let taken = open
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take();
    if let Some(mut span) = taken {
        f(&mut span);
        span.end();
    }
}

/// Starts a span of `kind` named `name`, child of `parent` (or a root), with `attributes`
/// built only if the span is sampled.
pub(crate) fn start(
    tracer: &SdkTracer,
    name: impl Into<Cow<'static, str>>,
    kind: SpanKind,
    parent: Option<&SpanContext>,
) -> Span {
    let parent = match parent {
        Some(span) => opentelemetry::Context::new().with_remote_span_context(span.clone()),
        None => opentelemetry::Context::new(),
    };
    tracer
        .span_builder(name)
        .with_kind(kind)
        .start_with_context(tracer, &parent)
}

/// Records a kit error on `span`: failures (faults of the callee) mark the span as an error;
/// business errors and the caller's own mistakes are tags only, so Zipkin does not paint a
/// healthy service red.
pub(crate) fn record_error(span: &mut Span, err: &Error) {
    if !span.is_recording() {
        return;
    }
    span.set_attribute(KeyValue::new("kit.error.kind", err.kind().as_str()));
    // What went wrong underneath: the wire carries the message alone.
    if let Some(detail) = err.detail() {
        span.set_attribute(KeyValue::new("kit.error.cause", detail));
    }
    if err.is_failure() {
        span.set_status(Status::error(err.message().to_owned()));
    } else {
        span.set_attribute(KeyValue::new("kit.error", err.message().to_owned()));
    }
}

/// Sets `key` on `span`.
#[cfg(any(feature = "http", feature = "grpc"))]
pub(crate) fn tag(span: &mut Span, key: &'static str, value: impl Into<opentelemetry::Value>) {
    span.set_attribute(KeyValue::new(key, value));
}

/// The tracing middleware: each call runs in a span named after the method, child of the
/// context's current span (the server span a transport started, or a caller's), and is the
/// current span for what the endpoint calls.
///
/// `Tracing::new` makes internal spans around endpoints, named after the endpoint the context
/// names (kit-core's `Named` sets it once for every middleware, and kit-server's `ServerStack`
/// does; `unnamed` without it); [`Tracing::client`]
/// makes the CLIENT span around a client endpoint, whose transport hook injects it
/// (`http::inject`, `grpc::inject`, features `http` and `grpc`). A
/// business error is tagged (`kit.error`, `kit.error.kind`), not marked as a failure; one
/// carried in a successful response is seen through kit-core's [`Outcome::error_of`] (an
/// endpoint marked with [`kit_core::Failing`]) and tagged the same way.
#[derive(Clone, Debug)]
pub struct Tracing {
    tracer: SdkTracer,
    // The span name; `None`: the endpoint's, from the context.
    method: Option<Cow<'static, str>>,
    kind: SpanKind,
}

impl Tracing {
    /// Internal spans named after the endpoint the call's context names.
    pub fn new(tracer: SdkTracer) -> Self {
        Tracing {
            tracer,
            method: None,
            kind: SpanKind::Internal,
        }
    }

    /// CLIENT spans named `method` (the remote method called), for a client endpoint.
    pub fn client(tracer: SdkTracer, method: impl Into<Cow<'static, str>>) -> Self {
        Tracing {
            tracer,
            method: Some(method.into()),
            kind: SpanKind::Client,
        }
    }
}

impl<E> Middleware<E> for Tracing {
    type Endpoint = TracingEndpoint<E>;

    fn wrap(&self, inner: E) -> TracingEndpoint<E> {
        TracingEndpoint {
            inner,
            tracing: self.clone(),
        }
    }
}

/// An endpoint whose calls are traced; made by [`Tracing`].
#[derive(Clone, Debug)]
pub struct TracingEndpoint<E> {
    inner: E,
    tracing: Tracing,
}

impl<E: Endpoint<Req>, Req: Send + 'static> Endpoint<Req> for TracingEndpoint<E> {
    type Response = E::Response;

    async fn call(&self, cx: Context, req: Req) -> Result<E::Response, Error> {
        let t = &self.tracing;
        let name = match &t.method {
            Some(method) => method.clone(),
            None => Cow::Borrowed(cx.endpoint_name().unwrap_or("unnamed")),
        };
        // The span (some 400 bytes) is on the heap, beside the allocations it makes anyway:
        // held inline it would size every future that holds this one, traced or not (an
        // absent, optional tracing layer's future is as large as a present one's).
        let mut span = Box::new(start(&t.tracer, name, t.kind.clone(), current(&cx)));
        let cx = with_current(cx, span.span_context().clone());
        #[cfg(not(feature = "tracing"))]
        let result = self.inner.call(cx, req).await;
        // The span is also OpenTelemetry's current context while the endpoint runs, so that
        // spans opened through the `tracing` facade become its children (tracing-opentelemetry
        // takes a new span's parent from it).
        #[cfg(feature = "tracing")]
        let result = {
            use opentelemetry::trace::FutureExt as _;
            let otel =
                opentelemetry::Context::new().with_remote_span_context(span.span_context().clone());
            self.inner.call(cx, req).with_context(otel).await
        };
        if let Some(err) = Outcome::error_of(&self.inner, &result) {
            record_error(&mut span, &err);
        }
        span.end();
        result
    }

    fn failed(&self, response: &E::Response) -> Option<Error> {
        self.inner.failed(response)
    }
}

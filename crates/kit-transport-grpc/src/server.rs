//! The server side: a kit endpoint behind one method of a tonic-generated service (go-kit's
//! `grpctransport.Server`).

use std::fmt;
use std::sync::Arc;

use kit_core::{Context, Endpoint, Error};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::Convert;
use crate::request::RequestInfo;
use crate::status::status_from_error;
use crate::timeout::{GRPC_TIMEOUT, parse};
use crate::wire::ResponseTrailers;

type Before = Arc<dyn Fn(Context, &MetadataMap) -> Context + Send + Sync>;
type After = Arc<dyn Fn(&Context, &mut MetadataMap, &mut MetadataMap) + Send + Sync>;
type ErrorHandler = Arc<dyn Fn(&Context, &Error) + Send + Sync>;
type Finalizer = Arc<dyn Fn(&Context, &Result<(), Status>) + Send + Sync>;

/// One gRPC method served by a kit endpoint: the protobuf request is decoded into the
/// endpoint's request, the endpoint called, its response encoded into the protobuf reply.
///
/// Implement the tonic-generated service trait by handing each method to its `Server`, as
/// go-kit services do with `ServeGRPC`: the trait's `sum` method is `self.sum.serve(request).await`.
///
/// ```
/// use kit_core::{endpoint_fn, Error};
/// use kit_transport_grpc::Server;
/// use tonic::{Code, Request};
///
/// // The messages as prost generates them.
/// #[derive(Clone, PartialEq, prost::Message)]
/// struct SumRequest {
///     #[prost(int64, tag = "1")]
///     a: i64,
///     #[prost(int64, tag = "2")]
///     b: i64,
/// }
/// #[derive(Clone, PartialEq, prost::Message)]
/// struct SumReply {
///     #[prost(int64, tag = "1")]
///     v: i64,
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sum = Server::new(
///     endpoint_fn(|_cx, (a, b): (i64, i64)| async move {
///         a.checked_add(b).ok_or_else(|| Error::invalid_argument("integer overflow"))
///     }),
///     |_cx, r: SumRequest| Ok((r.a, r.b)),
///     |_cx, v: i64| Ok(SumReply { v }),
/// );
/// let reply = sum.serve(Request::new(SumRequest { a: 1, b: 2 })).await.unwrap();
/// assert_eq!(reply.into_inner().v, 3);
/// let refused = sum.serve(Request::new(SumRequest { a: i64::MAX, b: 1 })).await.unwrap_err();
/// assert_eq!(refused.code(), Code::InvalidArgument);
/// # }
/// ```
///
/// The call's `grpc-timeout` becomes the context's deadline. Before hooks read the request
/// metadata into the context; then the metadata and the peer's address are there as a
/// [`RequestInfo`](crate::RequestInfo) for everything after. After hooks add response headers
/// and trailers on success. An error
/// from the decoder, the endpoint or the encoder goes to the error handlers and is answered
/// with the status [`status_from_error`](crate::status_from_error) makes (a real code from the
/// error's kind, never `UNKNOWN` unless the error is unknown). Finalizers see every call's
/// outcome.
pub struct Server<E, PReq, PResp, Req, Resp> {
    endpoint: Arc<E>,
    decode: Convert<PReq, Req>,
    encode: Convert<Resp, PResp>,
    before: Vec<Before>,
    after: Vec<After>,
    error_handlers: Vec<ErrorHandler>,
    finalizers: Vec<Finalizer>,
}

impl<E, PReq, PResp, Req, Resp> Clone for Server<E, PReq, PResp, Req, Resp> {
    fn clone(&self) -> Self {
        Server {
            endpoint: Arc::clone(&self.endpoint),
            decode: Arc::clone(&self.decode),
            encode: Arc::clone(&self.encode),
            before: self.before.clone(),
            after: self.after.clone(),
            error_handlers: self.error_handlers.clone(),
            finalizers: self.finalizers.clone(),
        }
    }
}

impl<E, PReq, PResp, Req, Resp> fmt::Debug for Server<E, PReq, PResp, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &std::any::type_name::<E>())
            .field("before", &self.before.len())
            .field("after", &self.after.len())
            .finish_non_exhaustive()
    }
}

impl<E, PReq, PResp, Req, Resp> Server<E, PReq, PResp, Req, Resp>
where
    E: Endpoint<Req, Response = Resp>,
    PReq: Send + 'static,
    PResp: Send + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// Serves `endpoint`, decoding protobuf requests with `decode` and encoding its responses
    /// with `encode`.
    pub fn new(
        endpoint: E,
        decode: impl Fn(&Context, PReq) -> Result<Req, Error> + Send + Sync + 'static,
        encode: impl Fn(&Context, Resp) -> Result<PResp, Error> + Send + Sync + 'static,
    ) -> Self {
        Server {
            endpoint: Arc::new(endpoint),
            decode: Arc::new(decode),
            encode: Arc::new(encode),
            before: Vec::new(),
            after: Vec::new(),
            error_handlers: Vec::new(),
            finalizers: Vec::new(),
        }
    }

    /// Adds a hook that reads the request metadata into the context (go-kit's `ServerBefore`).
    pub fn before(
        mut self,
        f: impl Fn(Context, &MetadataMap) -> Context + Send + Sync + 'static,
    ) -> Self {
        self.before.push(Arc::new(f));
        self
    }

    /// Adds a hook that sets response headers (the first map) and trailers (the second) on
    /// successful calls (go-kit's `ServerAfter`).
    ///
    /// Trailers are sent by the [`WireLayer`](crate::WireLayer), which a
    /// [`Listener`](crate::Listener) always has; a tonic server without it sends only the
    /// headers.
    pub fn after(
        mut self,
        f: impl Fn(&Context, &mut MetadataMap, &mut MetadataMap) + Send + Sync + 'static,
    ) -> Self {
        self.after.push(Arc::new(f));
        self
    }

    /// Adds a handler that sees every error, for logging.
    pub fn error_handler(mut self, f: impl Fn(&Context, &Error) + Send + Sync + 'static) -> Self {
        self.error_handlers.push(Arc::new(f));
        self
    }

    /// Adds a finalizer, which sees each call's outcome: `Ok` or the status answered.
    pub fn finalizer(
        mut self,
        f: impl Fn(&Context, &Result<(), Status>) + Send + Sync + 'static,
    ) -> Self {
        self.finalizers.push(Arc::new(f));
        self
    }

    /// Serves one call.
    pub async fn serve(&self, request: Request<PReq>) -> Result<Response<PResp>, Status> {
        let remote_addr = request.remote_addr();
        let (metadata, _extensions, message) = request.into_parts();
        let mut cx = Context::new();
        if let Some(timeout) = metadata
            .get(GRPC_TIMEOUT)
            .and_then(|v| v.to_str().ok())
            .and_then(parse)
        {
            cx = cx.with_timeout(timeout);
        }
        for before in &self.before {
            cx = before(cx, &metadata);
        }
        let cx = cx.with_value(RequestInfo::new(remote_addr, metadata));
        let result = async {
            let request = (self.decode)(&cx, message)?;
            let response = self.endpoint.call(cx.clone(), request).await?;
            (self.encode)(&cx, response)
        }
        .await;
        let answer = match result {
            Ok(reply) => {
                let mut response = Response::new(reply);
                if !self.after.is_empty() {
                    let mut trailers = MetadataMap::new();
                    for after in &self.after {
                        after(&cx, response.metadata_mut(), &mut trailers);
                    }
                    if !trailers.is_empty() {
                        response.extensions_mut().insert(ResponseTrailers(trailers));
                    }
                }
                Ok(response)
            }
            Err(err) => {
                for handler in &self.error_handlers {
                    handler(&cx, &err);
                }
                Err(status_from_error(&err))
            }
        };
        if !self.finalizers.is_empty() {
            let outcome = answer.as_ref().map(|_| ()).map_err(Clone::clone);
            for finalizer in &self.finalizers {
                finalizer(&cx, &outcome);
            }
        }
        answer
    }
}

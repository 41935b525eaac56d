//! The server side: a kit endpoint behind one method of a tonic-generated service (go-kit's
//! `grpctransport.Server`).

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;

use kit_core::{Context, Endpoint, Error};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use crate::Convert;
use crate::request::RequestInfo;
use crate::status::status_from_error;
use crate::timeout::{GRPC_TIMEOUT, parse};
use crate::wire::{CALL_PATH, ResponseTrailers};

type Before = Arc<dyn Fn(Context, &RequestInfo) -> Context + Send + Sync>;
type After = Arc<dyn Fn(&Context, &mut MetadataMap, &mut MetadataMap) + Send + Sync>;
type ErrorEncoder = Arc<dyn Fn(&Context, &Error) -> Status + Send + Sync>;
type ErrorHandler = Arc<dyn Fn(&Context, &Error) + Send + Sync>;
type Finalizer = Arc<dyn Fn(&Context, &Result<(), Status>) + Send + Sync>;

#[derive(Clone)]
struct Options {
    before: Vec<Before>,
    after: Vec<After>,
    error_encoder: ErrorEncoder,
    error_handlers: Vec<ErrorHandler>,
    finalizers: Vec<Finalizer>,
}

/// A server's hooks, shareable between the servers of a service's methods (clone it, or pass it
/// to each with [`Server::options`]): the shape of kit-transport-http's `ServerOptions`, in
/// gRPC's terms. Defaults: no hooks, and [`status_from_error`] as the error encoder.
#[derive(Clone)]
pub struct ServerOptions {
    inner: Arc<Options>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            inner: Arc::new(Options {
                before: Vec::new(),
                after: Vec::new(),
                error_encoder: Arc::new(|_, err| status_from_error(err)),
                error_handlers: Vec::new(),
                finalizers: Vec::new(),
            }),
        }
    }
}

impl ServerOptions {
    /// The defaults.
    pub fn new() -> Self {
        ServerOptions::default()
    }

    fn edit(mut self, f: impl FnOnce(&mut Options)) -> Self {
        f(Arc::make_mut(&mut self.inner));
        self
    }

    /// Adds a hook that reads the call (its metadata, method and peer) into the context before
    /// decoding (go-kit's `ServerBefore`). Hooks run in the order added.
    pub fn before(
        self,
        f: impl Fn(Context, &RequestInfo) -> Context + Send + Sync + 'static,
    ) -> Self {
        self.edit(|o| o.before.push(Arc::new(f)))
    }

    /// Adds a hook that sets response headers (the first map) and trailers (the second) on
    /// successful calls (go-kit's `ServerAfter`).
    ///
    /// Trailers are sent by the [`WireLayer`](crate::WireLayer), which a
    /// [`Listener`](crate::Listener) always has; a tonic server without it sends only the
    /// headers.
    pub fn after(
        self,
        f: impl Fn(&Context, &mut MetadataMap, &mut MetadataMap) + Send + Sync + 'static,
    ) -> Self {
        self.edit(|o| o.after.push(Arc::new(f)))
    }

    /// Replaces the error encoder, which turns any error (from the decoder, the endpoint or
    /// the encoder) into the status answered.
    pub fn error_encoder(
        self,
        f: impl Fn(&Context, &Error) -> Status + Send + Sync + 'static,
    ) -> Self {
        self.edit(|o| o.error_encoder = Arc::new(f))
    }

    /// Adds a handler that sees every error, for logging (go-kit's `ServerErrorHandler`).
    pub fn error_handler(self, f: impl Fn(&Context, &Error) + Send + Sync + 'static) -> Self {
        self.edit(|o| o.error_handlers.push(Arc::new(f)))
    }

    /// Adds a finalizer, which sees each call's outcome: `Ok` or the status answered (go-kit's
    /// `ServerFinalizer`).
    pub fn finalizer(
        self,
        f: impl Fn(&Context, &Result<(), Status>) + Send + Sync + 'static,
    ) -> Self {
        self.edit(|o| o.finalizers.push(Arc::new(f)))
    }
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.inner;
        f.debug_struct("ServerOptions")
            .field("before", &o.before.len())
            .field("after", &o.after.len())
            .field("error_handlers", &o.error_handlers.len())
            .field("finalizers", &o.finalizers.len())
            .finish_non_exhaustive()
    }
}

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
/// The call's `grpc-timeout` becomes the context's deadline. The hooks are a [`ServerOptions`],
/// one value shared by every method of a service ([`Server::options`]). Before hooks read the
/// call (metadata, method, peer: a [`RequestInfo`](crate::RequestInfo)) into the context; then
/// the `RequestInfo` is in the context for everything after. After hooks add response headers
/// and trailers on success. An error from the decoder, the endpoint or the encoder goes to the
/// error handlers and is answered with the status the error encoder makes (by default
/// [`status_from_error`](crate::status_from_error): a real code from the error's kind, never
/// `UNKNOWN` unless the error is unknown). Finalizers see every call's outcome.
pub struct Server<E, PReq, PResp, Req, Resp> {
    endpoint: Arc<E>,
    decode: Convert<PReq, Req>,
    encode: Convert<Resp, PResp>,
    options: ServerOptions,
}

impl<E, PReq, PResp, Req, Resp> Clone for Server<E, PReq, PResp, Req, Resp> {
    fn clone(&self) -> Self {
        Server {
            endpoint: Arc::clone(&self.endpoint),
            decode: Arc::clone(&self.decode),
            encode: Arc::clone(&self.encode),
            options: self.options.clone(),
        }
    }
}

impl<E, PReq, PResp, Req, Resp> fmt::Debug for Server<E, PReq, PResp, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &std::any::type_name::<E>())
            .field("options", &self.options)
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
            options: ServerOptions::default(),
        }
    }

    /// Uses `options` (hooks, error encoder) instead of the defaults.
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Serves one call.
    // Not an `async fn`, which keeps its argument twice once it has started (as an argument,
    // and moved into its body's locals); the request's parts and its info end in a block
    // before the call is awaited, or each would keep its room in the future to the end
    // (rustc 1.95, `-Zprint-type-sizes` on addsvc: 640 bytes as an `async fn`, 256 now; tonic
    // boxes it in every call).
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` would keep its arguments twice"
    )]
    pub fn serve(
        &self,
        request: Request<PReq>,
    ) -> impl Future<Output = Result<Response<PResp>, Status>> {
        async move {
            let options = &self.options.inner;
            let (cx, message) = {
                let remote_addr = request.remote_addr();
                let (metadata, _, message) = request.into_parts();
                let mut cx = Context::new();
                if let Some(timeout) = metadata
                    .as_ref()
                    .get(&GRPC_TIMEOUT)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse)
                {
                    cx = cx.with_timeout(timeout);
                }
                let path = CALL_PATH.try_with(Cell::take).ok().flatten();
                let info = RequestInfo::new(remote_addr, metadata, path);
                for before in &options.before {
                    cx = before(cx, &info);
                }
                (cx.with_value(info), message)
            };
            let result = async {
                let request = (self.decode)(&cx, message)?;
                let response = self.endpoint.call(cx.clone(), request).await?;
                (self.encode)(&cx, response)
            }
            .await;
            let answer = match result {
                Ok(reply) => {
                    let mut response = Response::new(reply);
                    if !options.after.is_empty() {
                        let mut trailers = MetadataMap::new();
                        for after in &options.after {
                            after(&cx, response.metadata_mut(), &mut trailers);
                        }
                        if !trailers.is_empty() {
                            response.extensions_mut().insert(ResponseTrailers(trailers));
                        }
                    }
                    Ok(response)
                }
                Err(err) => {
                    for handler in &options.error_handlers {
                        handler(&cx, &err);
                    }
                    Err((options.error_encoder)(&cx, &err))
                }
            };
            if !options.finalizers.is_empty() {
                let outcome = answer.as_ref().map(|_| ()).map_err(Clone::clone);
                for finalizer in &options.finalizers {
                    finalizer(&cx, &outcome);
                }
            }
            answer
        }
    }
}

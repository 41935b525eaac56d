//! The per-endpoint server: decode the request, call the endpoint, encode the response (go-kit's
//! `httptransport.Server`).

use std::borrow::Borrow;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, request::Parts};
use http_body::Body as HttpBody;
use http_body_util::Full;
use kit_core::{Context, Endpoint, Error};

use crate::body::{AnyBody, Body, BoxError, box_body, read_limited};
use crate::error::encode_error;
use crate::request::{RequestInfo, X_REQUEST_ID};

type Before = Arc<dyn Fn(Context, &Parts) -> Context + Send + Sync>;
type After = Arc<dyn Fn(&Context, &mut http::response::Parts) + Send + Sync>;
type ErrorEncoder = Arc<dyn Fn(&Context, &Error) -> Response<Bytes> + Send + Sync>;
type ErrorHandler = Arc<dyn Fn(&Context, &Error) + Send + Sync>;
type Finalizer = Arc<dyn Fn(&Context, &Finished) + Send + Sync>;
type Decode<Req> = Arc<dyn Fn(&Context, &Request<Bytes>) -> Result<Req, Error> + Send + Sync>;
type Encode<Resp> = Arc<dyn Fn(&Context, Resp) -> Result<Response<Bytes>, Error> + Send + Sync>;

/// What a finalizer learns about a request once its response is ready; the request itself is
/// the context's [`RequestInfo`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Finished {
    /// The response status.
    pub status: StatusCode,
    /// The length of the response body.
    pub bytes_written: u64,
}

/// The body limit unless set: 1 MiB.
pub(crate) const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// The body read timeout unless set: 30 s.
pub(crate) const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub(crate) struct Options {
    before: Vec<Before>,
    after: Vec<After>,
    error_encoder: ErrorEncoder,
    pub(crate) error_handlers: Vec<ErrorHandler>,
    finalizers: Vec<Finalizer>,
    body_limit: usize,
    body_read_timeout: Duration,
}

/// A server's hooks and limits, shareable between the servers of a service (clone it, or pass
/// it to each with [`Server::options`]). Defaults: no hooks, the JSON
/// [`encode_error`](crate::encode_error), a 1 MiB body limit, 30 s to read the body.
#[derive(Clone)]
pub struct ServerOptions {
    pub(crate) inner: Arc<Options>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            inner: Arc::new(Options {
                before: Vec::new(),
                after: Vec::new(),
                error_encoder: Arc::new(|_, err| encode_error(err)),
                error_handlers: Vec::new(),
                finalizers: Vec::new(),
                body_limit: DEFAULT_BODY_LIMIT,
                body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
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

    /// Adds a hook that runs before decoding, to carry what it reads from the request into the
    /// context (go-kit's `ServerBefore`). Hooks run in the order added.
    pub fn before(self, f: impl Fn(Context, &Parts) -> Context + Send + Sync + 'static) -> Self {
        self.edit(|o| o.before.push(Arc::new(f)))
    }

    /// Adds a hook that runs on successful responses after encoding, to set headers
    /// (go-kit's `ServerAfter`).
    pub fn after(
        self,
        f: impl Fn(&Context, &mut http::response::Parts) + Send + Sync + 'static,
    ) -> Self {
        self.edit(|o| o.after.push(Arc::new(f)))
    }

    /// Replaces the error encoder, which turns any error (from the body, the decoder, the
    /// endpoint or the encoder) into the response.
    pub fn error_encoder(
        self,
        f: impl Fn(&Context, &Error) -> Response<Bytes> + Send + Sync + 'static,
    ) -> Self {
        self.edit(|o| o.error_encoder = Arc::new(f))
    }

    /// Adds a handler that sees every error, for logging (go-kit's `ServerErrorHandler`).
    pub fn error_handler(self, f: impl Fn(&Context, &Error) + Send + Sync + 'static) -> Self {
        self.edit(|o| o.error_handlers.push(Arc::new(f)))
    }

    /// Adds a finalizer, which runs once per request with the status and the body length
    /// (go-kit's `ServerFinalizer`).
    pub fn finalizer(self, f: impl Fn(&Context, &Finished) + Send + Sync + 'static) -> Self {
        self.edit(|o| o.finalizers.push(Arc::new(f)))
    }

    /// The largest request body read, in bytes; a larger one gets 413. Default 1 MiB.
    pub fn body_limit(self, bytes: usize) -> Self {
        self.edit(|o| o.body_limit = bytes)
    }

    /// How long the whole request body may take to arrive; a slower one gets 408. Default 30 s.
    pub fn body_read_timeout(self, timeout: Duration) -> Self {
        self.edit(|o| o.body_read_timeout = timeout)
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
            .field("body_limit", &o.body_limit)
            .field("body_read_timeout", &o.body_read_timeout)
            .finish_non_exhaustive()
    }
}

/// One endpoint served over HTTP: the request is decoded, the endpoint called, the response
/// encoded; any error becomes a response through the error encoder.
///
/// The body is read whole first (up to the [body limit](ServerOptions::body_limit): 413
/// beyond). The decoder sees the whole request; the endpoint's context then holds its head as a
/// [`RequestInfo`] (method, path, host, headers, peer, request id); a request id the client
/// sent, or one the service asked for, is echoed in `x-request-id`. A response with status
/// 204 is sent without a body. A `Server` is a `tower::Service` for any request body and is
/// cheap to clone.
pub struct Server<E, Req, Resp> {
    pub(crate) endpoint: Arc<E>,
    decode: Decode<Req>,
    encode: Encode<Resp>,
    options: ServerOptions,
}

impl<E, Req, Resp> Clone for Server<E, Req, Resp> {
    fn clone(&self) -> Self {
        Server {
            endpoint: Arc::clone(&self.endpoint),
            decode: Arc::clone(&self.decode),
            encode: Arc::clone(&self.encode),
            options: self.options.clone(),
        }
    }
}

impl<E, Req, Resp> fmt::Debug for Server<E, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("endpoint", &std::any::type_name::<E>())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl<E, Req, Resp> Server<E, Req, Resp>
where
    E: Endpoint<Req, Response = Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// Serves `endpoint`, decoding requests with `decode` and encoding responses with `encode`
    /// (for JSON: [`json::decode_request`](crate::json::decode_request) and
    /// [`json::encode_response`](crate::json::encode_response)).
    pub fn new(
        endpoint: E,
        decode: impl Fn(&Context, &Request<Bytes>) -> Result<Req, Error> + Send + Sync + 'static,
        encode: impl Fn(&Context, Resp) -> Result<Response<Bytes>, Error> + Send + Sync + 'static,
    ) -> Self {
        Server {
            endpoint: Arc::new(endpoint),
            decode: Arc::new(decode),
            encode: Arc::new(encode),
            options: ServerOptions::default(),
        }
    }

    /// Uses `options` (hooks, error encoder, limits) instead of the defaults.
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// Serves one request.
    pub fn handle<B>(
        &self,
        request: Request<B>,
    ) -> impl Future<Output = Response<Body>> + Send + use<E, Req, Resp, B>
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        Self::handle_boxed(self.clone(), box_body(request))
    }

    /// Serves one request whose body is boxed already, for a server held by value (`Server`)
    /// or shared (`Arc<Server>`: the router's, one reference count per request rather than
    /// one per field). Not an `async fn`: one holds its arguments for its whole life beside
    /// what it makes of them, and this future is boxed for every request (small enough, it is
    /// served from the allocator's per-thread cache).
    pub(crate) fn handle_boxed(
        server: impl Borrow<Self> + Send + 'static,
        request: Request<AnyBody>,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        let (parts, body) = request.into_parts();
        Self::respond(server, parts, body)
    }

    /// Not an `async fn` either: one keeps its arguments twice once it has started (as
    /// arguments, and moved into its body's locals), the request's head (224 bytes) a second
    /// time in the box every request makes (rustc 1.95, `-Zprint-type-sizes` on addsvc: 904
    /// bytes as an `async fn`, 672 now).
    #[expect(
        clippy::manual_async_fn,
        reason = "an `async fn` would keep its arguments twice"
    )]
    fn respond(
        server: impl Borrow<Self> + Send + 'static,
        parts: http::request::Parts,
        body: AnyBody,
    ) -> impl Future<Output = Response<Body>> + Send + 'static {
        async move {
            let server = server.borrow();
            let options = &server.options.inner;
            let mut cx = Context::new();
            for before in &options.before {
                cx = before(cx, &parts);
            }
            // The request's head moves into the context once the decoder is done with it: the
            // endpoint, the hooks after it and the finalizer read it there, and nothing is cloned.
            let decoded =
                match read_limited(body, options.body_limit, options.body_read_timeout).await {
                    Ok(body) => {
                        let request = Request::from_parts(parts, body);
                        let decoded = (server.decode)(&cx, &request);
                        cx = cx.with_value(RequestInfo::new(request.into_parts().0));
                        decoded
                    }
                    Err(err) => {
                        cx = cx.with_value(RequestInfo::new(parts));
                        Err(err)
                    }
                };
            let result = match decoded {
                Ok(request) => match server.endpoint.call(cx.clone(), request).await {
                    Ok(response) => (server.encode)(&cx, response),
                    Err(err) => Err(err),
                },
                Err(err) => Err(err),
            };
            let mut response = match result {
                Ok(response) => {
                    let (mut head, body) = response.into_parts();
                    for after in &options.after {
                        after(&cx, &mut head);
                    }
                    Response::from_parts(head, body)
                }
                Err(err) => {
                    for handler in &options.error_handlers {
                        handler(&cx, &err);
                    }
                    (options.error_encoder)(&cx, &err)
                }
            };
            if response.status() == StatusCode::NO_CONTENT {
                *response.body_mut() = Bytes::new();
            }
            let request_id = cx
                .get::<RequestInfo>()
                .and_then(RequestInfo::request_id_header);
            if let Some(id) = request_id {
                response
                    .headers_mut()
                    .entry(&X_REQUEST_ID)
                    .or_insert_with(|| id.clone());
            }
            if !options.finalizers.is_empty() {
                let finished = Finished {
                    status: response.status(),
                    bytes_written: response.body().len() as u64,
                };
                for finalizer in &options.finalizers {
                    finalizer(&cx, &finished);
                }
            }
            response.map(Full::new)
        }
    }
}

impl<E, Req, Resp, B> tower_service::Service<Request<B>> for Server<E, Req, Resp>
where
    E: Endpoint<Req, Response = Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = self.handle(request);
        Box::pin(async move { Ok(response.await) })
    }
}

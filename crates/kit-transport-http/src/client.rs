//! The client: an endpoint that calls a remote one over HTTP (go-kit's `httptransport.Client`).

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kit_core::{Context, Endpoint, Error};

use crate::error::error_from_response;

/// A pool of HTTP connections, shared by the clients given it (cheap to clone). HTTP/1.1 by
/// default; [`ClientPool::http2`] speaks HTTP/2 without TLS (prior knowledge) instead.
#[derive(Clone, Debug)]
pub struct ClientPool {
    inner: HyperClient<HttpConnector, Full<Bytes>>,
}

impl Default for ClientPool {
    fn default() -> Self {
        ClientPool::http1()
    }
}

impl ClientPool {
    /// A pool of HTTP/1.1 keep-alive connections.
    pub fn http1() -> Self {
        ClientPool::build(false)
    }

    /// A pool of HTTP/2 connections (h2c, prior knowledge), multiplexing requests.
    pub fn http2() -> Self {
        ClientPool::build(true)
    }

    fn build(http2: bool) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let inner = HyperClient::builder(TokioExecutor::new())
            .http2_only(http2)
            .build(connector);
        ClientPool { inner }
    }
}

type Encode<Req> =
    Arc<dyn Fn(&Context, Req, &mut Request<Bytes>) -> Result<(), Error> + Send + Sync>;
type DecodeBuffered<Resp> =
    Arc<dyn Fn(&Context, Response<Bytes>) -> Result<Resp, Error> + Send + Sync>;
type BoxFuture<T> = kit_core::BoxFuture<'static, T>;
type DecodeStreaming<Resp> =
    Arc<dyn Fn(Context, Response<Incoming>) -> BoxFuture<Result<Resp, Error>> + Send + Sync>;
type Before = Arc<dyn Fn(&Context, &mut Request<Bytes>) + Send + Sync>;
type After = Arc<dyn Fn(&Context, &http::response::Parts) + Send + Sync>;
type Finalizer = Arc<dyn Fn(&Context, &Result<http::StatusCode, Error>) + Send + Sync>;

enum Decode<Resp> {
    Buffered(DecodeBuffered<Resp>),
    Streaming(DecodeStreaming<Resp>),
}

impl<Resp> Clone for Decode<Resp> {
    fn clone(&self) -> Self {
        match self {
            Decode::Buffered(f) => Decode::Buffered(Arc::clone(f)),
            Decode::Streaming(f) => Decode::Streaming(Arc::clone(f)),
        }
    }
}

/// The most of a response body a buffered client reads unless told otherwise: 16 MiB.
const DEFAULT_RESPONSE_LIMIT: usize = 16 << 20;
/// The most of an error body read for its message.
const ERROR_BODY_LIMIT: usize = 64 << 10;

/// An endpoint that calls a remote endpoint over HTTP: encode the request, send it, decode the
/// response.
///
/// The call's deadline and cancellation (from its [`Context`]) bound the whole exchange: past the
/// deadline the call fails with a timeout error and the request is abandoned. A response
/// with a non-2xx status is an error made by [`error_from_response`](crate::error_from_response)
/// (its kind from the status, the status kept, the message from the server's
/// `{"error":"..."}`), and is not handed to the decoder. Hooks: before (adjust the outgoing
/// request), after (read the response head), finalizer (sees every call's status or error).
///
/// Responses are read whole (up to 16 MiB by default, [`response_limit`](Client::response_limit))
/// before a buffered decoder runs; [`Client::streaming`] hands the decoder the body as it
/// arrives instead.
pub struct Client<Req, Resp> {
    pool: ClientPool,
    method: Method,
    uri: Uri,
    encode: Encode<Req>,
    decode: Decode<Resp>,
    before: Vec<Before>,
    after: Vec<After>,
    finalizers: Vec<Finalizer>,
    response_limit: usize,
}

impl<Req, Resp> Clone for Client<Req, Resp> {
    fn clone(&self) -> Self {
        Client {
            pool: self.pool.clone(),
            method: self.method.clone(),
            uri: self.uri.clone(),
            encode: Arc::clone(&self.encode),
            decode: self.decode.clone(),
            before: self.before.clone(),
            after: self.after.clone(),
            finalizers: self.finalizers.clone(),
            response_limit: self.response_limit,
        }
    }
}

impl<Req, Resp> fmt::Debug for Client<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("method", &self.method)
            .field("uri", &self.uri)
            .finish_non_exhaustive()
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Client<Req, Resp> {
    /// A client sending `method` requests to `uri`, the body made by `encode`, the 2xx
    /// response read whole and decoded by `decode` (for JSON:
    /// [`json::encode_request`](crate::json::encode_request),
    /// [`json::decode_response`](crate::json::decode_response)).
    pub fn new(
        method: Method,
        uri: Uri,
        encode: impl Fn(&Context, Req, &mut Request<Bytes>) -> Result<(), Error> + Send + Sync + 'static,
        decode: impl Fn(&Context, Response<Bytes>) -> Result<Resp, Error> + Send + Sync + 'static,
    ) -> Self {
        Client::with_decode(
            method,
            uri,
            Arc::new(encode),
            Decode::Buffered(Arc::new(decode)),
        )
    }

    /// A client whose decoder reads the 2xx response body itself, as it arrives (large or
    /// streamed responses).
    pub fn streaming<F, Fut>(
        method: Method,
        uri: Uri,
        encode: impl Fn(&Context, Req, &mut Request<Bytes>) -> Result<(), Error> + Send + Sync + 'static,
        decode: F,
    ) -> Self
    where
        F: Fn(Context, Response<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, Error>> + Send + 'static,
    {
        let decode: DecodeStreaming<Resp> =
            Arc::new(move |cx, response| Box::pin(decode(cx, response)));
        Client::with_decode(method, uri, Arc::new(encode), Decode::Streaming(decode))
    }

    fn with_decode(method: Method, uri: Uri, encode: Encode<Req>, decode: Decode<Resp>) -> Self {
        Client {
            pool: ClientPool::default(),
            method,
            uri,
            encode,
            decode,
            before: Vec::new(),
            after: Vec::new(),
            finalizers: Vec::new(),
            response_limit: DEFAULT_RESPONSE_LIMIT,
        }
    }

    /// Sends through `pool` (to share connections between clients, or to speak HTTP/2).
    pub fn pool(mut self, pool: ClientPool) -> Self {
        self.pool = pool;
        self
    }

    /// Adds a hook that adjusts each outgoing request after encoding (go-kit's `ClientBefore`).
    pub fn before(
        mut self,
        f: impl Fn(&Context, &mut Request<Bytes>) + Send + Sync + 'static,
    ) -> Self {
        self.before.push(Arc::new(f));
        self
    }

    /// Adds a hook that reads each response's head before decoding (go-kit's `ClientAfter`).
    pub fn after(
        mut self,
        f: impl Fn(&Context, &http::response::Parts) + Send + Sync + 'static,
    ) -> Self {
        self.after.push(Arc::new(f));
        self
    }

    /// Adds a finalizer, which sees each call's response status or error (go-kit's
    /// `ClientFinalizer`).
    pub fn finalizer(
        mut self,
        f: impl Fn(&Context, &Result<http::StatusCode, Error>) + Send + Sync + 'static,
    ) -> Self {
        self.finalizers.push(Arc::new(f));
        self
    }

    /// The largest response body a buffered client reads; a larger one is an error. Default
    /// 16 MiB.
    pub fn response_limit(mut self, bytes: usize) -> Self {
        self.response_limit = bytes;
        self
    }

    async fn exchange(&self, cx: &Context, req: Req) -> Result<(Resp, http::StatusCode), Error> {
        let mut request = Request::new(Bytes::new());
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        (self.encode)(cx, req, &mut request)?;
        for before in &self.before {
            before(cx, &mut request);
        }
        let response = self
            .pool
            .inner
            .request(request.map(Full::new))
            .await
            .map_err(exchange_error)?;
        let (head, body) = response.into_parts();
        for after in &self.after {
            after(cx, &head);
        }
        let status = head.status;
        if !status.is_success() {
            let body = Limited::new(body, ERROR_BODY_LIMIT)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(error_from_response(status, &body));
        }
        let decoded = match &self.decode {
            Decode::Buffered(decode) => {
                let body = Limited::new(body, self.response_limit)
                    .collect()
                    .await
                    .map_err(|err| {
                        Error::unavailable(format!("could not read the response body: {err}"))
                    })?
                    .to_bytes();
                decode(cx, Response::from_parts(head, body))?
            }
            Decode::Streaming(decode) => {
                decode(cx.clone(), Response::from_parts(head, body)).await?
            }
        };
        Ok((decoded, status))
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Endpoint<Req> for Client<Req, Resp> {
    type Response = Resp;

    async fn call(&self, cx: Context, req: Req) -> Result<Resp, Error> {
        let result = match cx.err() {
            // Already over: nothing is sent.
            Some(err) => Err(err),
            None => tokio::select! {
                result = self.exchange(&cx, req) => result,
                err = cx.done() => Err(err),
            },
        };
        if !self.finalizers.is_empty() {
            let status = result
                .as_ref()
                .map(|(_, status)| *status)
                .map_err(Clone::clone);
            for finalizer in &self.finalizers {
                finalizer(&cx, &status);
            }
        }
        result.map(|(response, _)| response)
    }
}

/// Classifies a failed exchange. A connection that could not be made, or that the server
/// closed or reset before its answer was complete (an instance killed mid-call, a keep-alive
/// connection it dropped), is unavailable: the call may succeed on another instance, and a
/// retry above a balancer takes it there. Other errors are classified by type (kit-core's
/// `From<BoxError>`).
fn exchange_error(err: hyper_util::client::legacy::Error) -> Error {
    if err.is_connect() {
        return Error::unavailable("could not connect to the server").with_source(err);
    }
    let lost = std::error::Error::source(&err)
        .and_then(|source| source.downcast_ref::<hyper::Error>())
        .is_some_and(|h| h.is_incomplete_message() || h.is_closed() || h.is_canceled());
    if lost {
        return Error::unavailable("the connection was lost before the answer was complete")
            .with_source(err);
    }
    Error::from(Box::new(err) as crate::BoxError)
}

//! Method and path to server, with JSON 404 and 405 answers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, header};
use http_body::Body as HttpBody;
use kit_core::{Endpoint, Error};

use crate::body::{AnyBody, Body, BoxError, box_body};
use crate::error::encode_error;
use crate::server::Server;

/// The servers of one path, by method.
type Methods = Vec<(Method, Arc<dyn Handler>)>;
type ResponseFuture = Pin<Box<dyn Future<Output = Response<Body>> + Send>>;

/// A server with its types erased, so that one router holds many.
trait Handler: Send + Sync {
    /// Serves `request` with the router's own reference: a server's fields are shared between
    /// the service's threads, and counting references to each of them per request would pass
    /// their cache lines between the threads (one increment and one decrement here instead).
    fn handle(self: Arc<Self>, request: Request<AnyBody>) -> ResponseFuture;
}

impl<E, Req, Resp> Handler for Server<E, Req, Resp>
where
    E: Endpoint<Req, Response = Resp>,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    fn handle(self: Arc<Self>, request: Request<AnyBody>) -> ResponseFuture {
        // The body is boxed already: no second box around it.
        Box::pin(Server::handle_boxed(self, request))
    }
}

/// Routes requests by exact path and method to [`Server`]s (go-kit services usually put each
/// method at its own path). An unknown path gets 404, a known path with another method 405
/// with an `Allow` header; both with a JSON error body. A `Router` is a `tower::Service` for
/// any request body and is cheap to clone.
///
/// ```
/// use kit_core::{endpoint_fn, Error};
/// use kit_transport_http::{json, Router, Server};
///
/// let upper = endpoint_fn(|_cx, s: String| async move { Ok::<_, Error>(s.to_uppercase()) });
/// let router = Router::new()
///     .post("/uppercase", Server::new(upper, json::decode_request, json::encode_response));
/// ```
#[derive(Clone, Default)]
pub struct Router {
    /// By path. A tree, not a hash map: a service has a handful of paths, and comparing the
    /// request's path with two or three of them costs less than hashing it (SipHash).
    routes: Arc<BTreeMap<String, Methods>>,
}

impl Router {
    /// A router with no routes.
    pub fn new() -> Self {
        Router::default()
    }

    /// Routes `method` requests for `path` to `server`; a later route for the same method and
    /// path replaces an earlier one.
    pub fn route<E, Req, Resp>(
        mut self,
        method: Method,
        path: &str,
        server: Server<E, Req, Resp>,
    ) -> Self
    where
        E: Endpoint<Req, Response = Resp>,
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        let routes = Arc::make_mut(&mut self.routes)
            .entry(path.to_owned())
            .or_default();
        routes.retain(|(m, _)| *m != method);
        routes.push((method, Arc::new(server)));
        self
    }

    /// Routes `POST` requests for `path` to `server`.
    pub fn post<E, Req, Resp>(self, path: &str, server: Server<E, Req, Resp>) -> Self
    where
        E: Endpoint<Req, Response = Resp>,
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        self.route(Method::POST, path, server)
    }

    /// Routes `GET` requests for `path` to `server`.
    pub fn get<E, Req, Resp>(self, path: &str, server: Server<E, Req, Resp>) -> Self
    where
        E: Endpoint<Req, Response = Resp>,
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        self.route(Method::GET, path, server)
    }

    fn dispatch(&self, request: Request<AnyBody>) -> ResponseFuture {
        let path = request.uri().path();
        let Some(routes) = self.routes.get(path) else {
            let err = Error::not_found(format!("no route for {} {path}", request.method()));
            return Box::pin(std::future::ready(encode_error(&err).map(Body::new)));
        };
        match routes.iter().find(|(m, _)| m == request.method()) {
            Some((_, handler)) => Arc::clone(handler).handle(request),
            None => {
                let err = Error::invalid_argument(format!(
                    "method {} is not allowed for {path}",
                    request.method()
                ))
                .with_http_status(405);
                let allow: Vec<&str> = routes.iter().map(|(m, _)| m.as_str()).collect();
                let mut response = encode_error(&err);
                if let Ok(allow) = HeaderValue::from_str(&allow.join(", ")) {
                    response.headers_mut().insert(header::ALLOW, allow);
                }
                Box::pin(std::future::ready(response.map(Body::new)))
            }
        }
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut routes: Vec<String> = self
            .routes
            .iter()
            .flat_map(|(path, methods)| methods.iter().map(move |(m, _)| format!("{m} {path}")))
            .collect();
        routes.sort();
        f.debug_struct("Router").field("routes", &routes).finish()
    }
}

impl<B> tower_service::Service<Request<B>> for Router
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = RouterFuture;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> RouterFuture {
        RouterFuture(self.dispatch(box_body(request)))
    }
}

/// The response future of a [`Router`]; it never fails.
pub struct RouterFuture(ResponseFuture);

impl Future for RouterFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        self.0.as_mut().poll(cx).map(Ok)
    }
}

impl fmt::Debug for RouterFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RouterFuture")
    }
}

//! Which service a call goes to: the one named in the call's path.

use std::any::Any;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use http::{Request, Response};
use tonic::Status;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::Service;

/// A call's response, to come: the future tonic's generated services return for every call,
/// so theirs is passed on as it is.
type CallFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

/// The gRPC services a [`Listener`](crate::Listener) serves, each called for the calls whose
/// path names it (`/pb.Add/Sum` goes to the service named `pb.Add`, whatever the method); a
/// call to a service not here is answered `UNIMPLEMENTED`, as a call to a method the service
/// does not have is by the service itself.
///
/// tonic's `Routes` does the same on axum's router, which for every call matches the path
/// against patterns, makes the path's parameters and inserts them into the request, clones a
/// boxed service, and converts the request's and the response's bodies to axum's and back:
/// on addsvc's gRPC `Sum`, ten allocations and about 4,700 instructions a call more than a
/// lookup among a few names (docs/PERFORMANCE.md).
///
/// ```
/// use kit_transport_grpc::{Health, Routes};
///
/// // With a generated service: `Routes::new(AddServer::new(add)).add_service(...)`.
/// let routes = Routes::new(Health::new().service());
/// assert_eq!(routes.names().collect::<Vec<_>>(), ["grpc.health.v1.Health"]);
/// ```
#[derive(Clone)]
pub struct Routes {
    services: Arc<Vec<Route>>,
}

#[derive(Clone)]
struct Route {
    name: &'static str,
    service: Arc<dyn Handle>,
}

impl Routes {
    /// Routes to `service` the calls whose path names it.
    pub fn new<S>(service: S) -> Routes
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Routes {
            services: Arc::new(Vec::new()),
        }
        .add_service(service)
    }

    /// Routes to `service` too the calls whose path names it, instead of to a service added
    /// before under the same name.
    pub fn add_service<S>(mut self, service: S) -> Routes
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let services = Arc::make_mut(&mut self.services);
        services.retain(|route| route.name != S::NAME);
        services.push(Route {
            name: S::NAME,
            service: Arc::new(service),
        });
        self
    }

    /// The names of the services routed to, in the order they were added.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.services.iter().map(|route| route.name)
    }
}

impl fmt::Debug for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Service<Request<Body>> for Routes {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = CallFuture;

    /// Always ready: each call asks its service.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> CallFuture {
        let name = service_name(request.uri().path());
        match self.services.iter().find(|route| Some(route.name) == name) {
            Some(route) => route.service.handle(request),
            None => Box::pin(std::future::ready(Ok(unimplemented()))),
        }
    }
}

/// The service's name in a call's path (`/pb.Add/Sum`: `pb.Add`).
fn service_name(path: &str) -> Option<&str> {
    let (name, _method) = path.strip_prefix('/')?.split_once('/')?;
    Some(name)
}

/// What a call to a service that is not here gets, as tonic answers it.
fn unimplemented() -> Response<Body> {
    let (head, ()) = Status::unimplemented("").into_http::<()>().into_parts();
    Response::from_parts(head, Body::empty())
}

/// One service, called through `&`: a service is called through `&mut`, so each call is made
/// on a clone (a generated service's clone shares the implementation behind an `Arc`).
trait Handle: Send + Sync {
    fn handle(&self, request: Request<Body>) -> CallFuture;
}

impl<S> Handle for S
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    fn handle(&self, request: Request<Body>) -> CallFuture {
        let mut service = self.clone();
        // Generated services are always ready. One that is not keeps what it was asked with
        // (a waker that wakes nobody) and is asked again, with the call's own, in the future.
        match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Ok(())) => boxed(service.call(request)),
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => Box::pin(async move {
                std::future::poll_fn(|cx| service.poll_ready(cx)).await?;
                service.call(request).await
            }),
        }
    }
}

/// `future` boxed, unless it is boxed already as a [`CallFuture`] (a generated service's is):
/// decided per type when compiled.
fn boxed<F>(future: F) -> CallFuture
where
    F: Future<Output = Result<Response<Body>, Infallible>> + Send + 'static,
{
    let mut future = Some(future);
    match (&mut future as &mut dyn Any).downcast_mut::<Option<CallFuture>>() {
        Some(boxed) => boxed.take().expect("just put there"),
        None => Box::pin(future.expect("not taken")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A service that answers with its name in `x-served-by`; if `every_other`, it is ready
    /// only every other time it is asked, and refuses (panics) a call it was not ready for.
    #[derive(Clone)]
    struct Named<const N: u8> {
        every_other: bool,
        asked: Arc<AtomicUsize>,
        ready: bool,
    }

    impl<const N: u8> Named<N> {
        fn new(every_other: bool) -> Self {
            Named {
                every_other,
                asked: Arc::default(),
                ready: false,
            }
        }
    }

    impl NamedService for Named<1> {
        const NAME: &'static str = "t.One";
    }

    impl NamedService for Named<2> {
        const NAME: &'static str = "t.Two";
    }

    impl<const N: u8> Service<Request<Body>> for Named<N> {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

        fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            let asked = self.asked.fetch_add(1, Ordering::Relaxed);
            if self.every_other && asked.is_multiple_of(2) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.ready = true;
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: Request<Body>) -> Self::Future {
            assert!(
                std::mem::take(&mut self.ready),
                "called before it was ready"
            );
            let mut response = Response::new(Body::empty());
            let served = format!("{N} {}", request.uri().path());
            response
                .headers_mut()
                .insert("x-served-by", served.parse().unwrap());
            std::future::ready(Ok(response))
        }
    }

    async fn call(routes: &Routes, path: &str) -> Response<Body> {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        routes.clone().call(request).await.unwrap()
    }

    fn header<'a>(response: &'a Response<Body>, name: &str) -> Option<&'a str> {
        response.headers().get(name).map(|v| v.to_str().unwrap())
    }

    #[tokio::test]
    async fn each_call_goes_to_the_service_its_path_names() {
        let routes = Routes::new(Named::<1>::new(false)).add_service(Named::<2>::new(true));
        assert_eq!(routes.names().collect::<Vec<_>>(), ["t.One", "t.Two"]);
        for (path, served) in [
            ("/t.One/Get", "1 /t.One/Get"),
            ("/t.Two/Get", "2 /t.Two/Get"),
            // Not ready at once: waited for, then called (four times, ready every other).
            ("/t.Two/Put", "2 /t.Two/Put"),
            ("/t.Two/", "2 /t.Two/"),
            ("/t.One/Put", "1 /t.One/Put"),
        ] {
            let response = call(&routes, path).await;
            assert_eq!(header(&response, "x-served-by"), Some(served), "{path}");
        }
    }

    #[tokio::test]
    async fn a_call_to_a_service_not_here_is_unimplemented() {
        let routes = Routes::new(Named::<1>::new(false));
        for path in [
            "/t.Two/Get",
            "/t.One",
            "/",
            "/t.On/Get",
            "/t.One.X/Get",
            "/x/t.One/Get",
        ] {
            let response = call(&routes, path).await;
            assert_eq!(response.status(), http::StatusCode::OK, "{path}");
            assert_eq!(header(&response, "grpc-status"), Some("12"), "{path}");
            assert_eq!(
                header(&response, "content-type"),
                Some("application/grpc"),
                "{path}"
            );
            assert_eq!(header(&response, "x-served-by"), None, "{path}");
        }
    }

    #[tokio::test]
    async fn a_service_added_again_under_its_name_replaces_the_first() {
        let first = Named::<1>::new(false);
        let asked_first = Arc::clone(&first.asked);
        let routes = Routes::new(first).add_service(Named::<1>::new(false));
        assert_eq!(routes.names().collect::<Vec<_>>(), ["t.One"]);
        let response = call(&routes, "/t.One/Get").await;
        assert_eq!(header(&response, "x-served-by"), Some("1 /t.One/Get"));
        assert_eq!(asked_first.load(Ordering::Relaxed), 0);
    }
}

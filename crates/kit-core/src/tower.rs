//! Bridges to tower, both ways, for endpoints and for middleware.
//!
//! - [`EndpointService`]: any [`Endpoint`] as a `tower::Service<(Context, Req)>`, so tower
//!   layers (`Timeout`, `ConcurrencyLimit`, `Buffer`, ...) and `ServiceBuilder` wrap it.
//! - [`ServiceEndpoint`]: a `tower::Service<(Context, Req)>` that is `Clone + Send + Sync`, and
//!   whose clones share their state (as tower's middleware do), as an [`Endpoint`].
//! - [`LayerMiddleware`]: a tower `Layer` used as a kit [`Middleware`], inside a [`Chain`].
//! - [`MiddlewareLayer`]: a kit [`Middleware`] used as a tower `Layer`, inside a
//!   `ServiceBuilder`.
//!
//! The request type on the tower side is the pair `(Context, Req)`: the context travels with
//! the request, explicitly, as it does everywhere else in kit-rs. Errors from tower come back
//! classified by the types in their source chain ([`Error`]'s `From<BoxError>`): tower's
//! timeout becomes [`ErrorKind::Timeout`], load-shedding becomes [`ErrorKind::Overloaded`].
//!
//! Readiness does not cross a bridge: an [`EndpointService`] is always ready. Layers that act
//! on the readiness of the service inside them (`LoadShed` over `ConcurrencyLimit`, `Buffer`)
//! therefore belong together in one `ServiceBuilder`, bridged once, rather than in separate
//! [`LayerMiddleware`]s, where an outer `LoadShed` would see an always-ready service and never
//! shed.
//!
//! ```
//! use std::time::Duration;
//! use kit_core::{endpoint_fn, Context, Endpoint, Error, ErrorKind};
//! use kit_core::tower::{EndpointService, ServiceEndpoint};
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let slow = endpoint_fn(|_cx, ()| async {
//!     tokio::time::sleep(Duration::from_secs(5)).await;
//!     Ok::<_, Error>(())
//! });
//! let svc = ServiceBuilder::new()
//!     .timeout(Duration::from_millis(20))
//!     .service(EndpointService::new(slow));
//! let ep = ServiceEndpoint::new(svc);
//! assert_eq!(ep.call(Context::new(), ()).await.unwrap_err().kind(), ErrorKind::Timeout);
//! # }
//! ```
//!
//! [`ErrorKind::Timeout`]: crate::ErrorKind::Timeout
//! [`ErrorKind::Overloaded`]: crate::ErrorKind::Overloaded
//! [`Chain`]: crate::Chain

use std::fmt;
use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use tower::{Layer, Service};

use crate::{BoxError, BoxFuture, Context, Endpoint, Error, Middleware};

/// An [`Endpoint`] as a `tower::Service<(Context, Req)>`.
///
/// Always ready (endpoints signal overload with errors, not with `poll_ready`). Each call's
/// future owns a reference to the endpoint, so it is `'static` as tower requires; it is boxed,
/// because the endpoint's future type cannot be named.
pub struct EndpointService<E> {
    endpoint: Arc<E>,
}

impl<E> EndpointService<E> {
    /// Serves `endpoint`.
    pub fn new(endpoint: E) -> Self {
        EndpointService {
            endpoint: Arc::new(endpoint),
        }
    }
}

impl<E> Clone for EndpointService<E> {
    fn clone(&self) -> Self {
        EndpointService {
            endpoint: Arc::clone(&self.endpoint),
        }
    }
}

impl<E> fmt::Debug for EndpointService<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointService").finish_non_exhaustive()
    }
}

impl<E, Req> Service<(Context, Req)> for EndpointService<E>
where
    E: Endpoint<Req>,
    Req: Send + 'static,
{
    type Response = E::Response;
    type Error = Error;
    type Future = BoxFuture<'static, Result<E::Response, Error>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, (cx, req): (Context, Req)) -> Self::Future {
        let endpoint = Arc::clone(&self.endpoint);
        Box::pin(async move { endpoint.call(cx, req).await })
    }
}

/// A cloneable `tower::Service<(Context, Req)>` as an [`Endpoint`].
///
/// Each call clones the service, waits for `poll_ready`, then calls it: the pattern tower's
/// own middleware expects, so that layers such as `ConcurrencyLimit` hand a permit to each
/// call. Clones must therefore share whatever state matters (tower's layers do); a service that
/// keeps state per handle belongs behind `tower::buffer::Buffer`. The service must be `Sync`
/// because endpoints are shared between tasks: type-erase with `tower::util::BoxCloneSyncService`
/// rather than `BoxCloneService`. The service's errors are converted with `From<BoxError>` (see
/// [`Error`]).
#[derive(Clone, Debug)]
pub struct ServiceEndpoint<S> {
    service: S,
}

impl<S> ServiceEndpoint<S> {
    /// Calls `service`.
    pub fn new(service: S) -> Self {
        ServiceEndpoint { service }
    }
}

impl<S, Req> Endpoint<Req> for ServiceEndpoint<S>
where
    S: Service<(Context, Req)> + Clone + Send + Sync + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    S::Response: Send + 'static,
    Req: Send,
{
    type Response = S::Response;

    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl Future<Output = Result<S::Response, Error>> + Send {
        let mut service = self.service.clone();
        async move {
            poll_fn(|task| service.poll_ready(task))
                .await
                .map_err(from_tower)?;
            service.call((cx, req)).await.map_err(from_tower)
        }
    }
}

fn from_tower(err: impl Into<BoxError>) -> Error {
    Error::from(err.into())
}

/// A tower `Layer` as a kit [`Middleware`]: the endpoint is bridged to a service, layered, and
/// bridged back.
///
/// ```
/// use kit_core::{endpoint_fn, Chain, Context, Endpoint, Error, Middleware};
/// use kit_core::tower::LayerMiddleware;
/// use tower::limit::ConcurrencyLimitLayer;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ep = Chain::new()
///     .with(LayerMiddleware::new(ConcurrencyLimitLayer::new(8)))
///     .wrap(endpoint_fn(|_cx, n: u32| async move { Ok::<_, Error>(n + 1) }));
/// assert_eq!(ep.call(Context::new(), 1).await.unwrap(), 2);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct LayerMiddleware<L> {
    layer: L,
}

impl<L> LayerMiddleware<L> {
    /// Uses `layer` as a middleware.
    pub fn new(layer: L) -> Self {
        LayerMiddleware { layer }
    }
}

impl<E, L> Middleware<E> for LayerMiddleware<L>
where
    L: Layer<EndpointService<E>>,
{
    type Endpoint = ServiceEndpoint<L::Service>;

    fn wrap(&self, inner: E) -> Self::Endpoint {
        ServiceEndpoint::new(self.layer.layer(EndpointService::new(inner)))
    }
}

/// A kit [`Middleware`] as a tower `Layer`: the service is bridged to an endpoint, wrapped,
/// and bridged back.
#[derive(Clone, Debug)]
pub struct MiddlewareLayer<M> {
    middleware: M,
}

impl<M> MiddlewareLayer<M> {
    /// Uses `middleware` as a layer.
    pub fn new(middleware: M) -> Self {
        MiddlewareLayer { middleware }
    }
}

impl<S, M> Layer<S> for MiddlewareLayer<M>
where
    M: Middleware<ServiceEndpoint<S>>,
{
    type Service = EndpointService<M::Endpoint>;

    fn layer(&self, inner: S) -> Self::Service {
        EndpointService::new(self.middleware.wrap(ServiceEndpoint::new(inner)))
    }
}

//! [`BoxEndpoint`]: a type-erased, cloneable endpoint.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::{Context, Endpoint, Error};

/// A boxed future that is `Send`, as a type-erased endpoint returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Any endpoint from `Req` to `Resp`, behind one type.
///
/// Endpoints built from different closures and middleware stacks have different types;
/// `BoxEndpoint` erases them so that they fit in one collection (a load balancer's set, a
/// router's table) or a struct field. It is `Clone` (one reference count) and costs one heap
/// allocation per call for the boxed future.
///
/// ```
/// use kit_core::{endpoint_fn, BoxEndpoint, Context, Endpoint, Error};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Error> {
/// let ops: Vec<BoxEndpoint<(i64, i64), i64>> = vec![
///     BoxEndpoint::new(endpoint_fn(|_cx, (a, b): (i64, i64)| async move { Ok(a + b) })),
///     BoxEndpoint::new(endpoint_fn(|_cx, (a, b): (i64, i64)| async move { Ok(a * b) })),
/// ];
/// let mut out = Vec::new();
/// for op in &ops {
///     out.push(op.call(Context::new(), (3, 4)).await?);
/// }
/// assert_eq!(out, [7, 12]);
/// # Ok(()) }
/// ```
pub struct BoxEndpoint<Req, Resp> {
    inner: Arc<dyn DynEndpoint<Req, Resp>>,
}

impl<Req, Resp> BoxEndpoint<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// Erases the type of `endpoint`.
    pub fn new<E>(endpoint: E) -> Self
    where
        E: Endpoint<Req, Response = Resp>,
    {
        BoxEndpoint {
            inner: Arc::new(endpoint),
        }
    }
}

impl<Req, Resp> BoxEndpoint<Req, Resp> {
    /// Whether `self` and `other` are the same endpoint: clones of one boxing. A balancer uses
    /// it to keep what it knows of an endpoint (its load, whether a retry tried it) across
    /// published sets, which reuse the endpoints of instances that stay.
    ///
    /// ```
    /// use kit_core::{endpoint_fn, BoxEndpoint, Error};
    ///
    /// let one = BoxEndpoint::new(endpoint_fn(|_cx, n: u32| async move { Ok::<_, Error>(n) }));
    /// let other = BoxEndpoint::new(endpoint_fn(|_cx, n: u32| async move { Ok::<_, Error>(n) }));
    /// assert!(one.ptr_eq(&one.clone()));
    /// assert!(!one.ptr_eq(&other));
    /// ```
    pub fn ptr_eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.inner), Arc::as_ptr(&other.inner))
    }
}

impl<Req, Resp> Clone for BoxEndpoint<Req, Resp> {
    fn clone(&self) -> Self {
        BoxEndpoint {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<Req, Resp> fmt::Debug for BoxEndpoint<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxEndpoint").finish_non_exhaustive()
    }
}

impl<Req, Resp> Endpoint<Req> for BoxEndpoint<Req, Resp>
where
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;

    fn call(&self, cx: Context, req: Req) -> impl Future<Output = Result<Resp, Error>> + Send {
        self.inner.call_boxed(cx, req)
    }

    fn failed(&self, response: &Resp) -> Option<Error> {
        self.inner.failed_dyn(response)
    }
}

// The object-safe twin of Endpoint: the same call, with the future boxed.
trait DynEndpoint<Req, Resp>: Send + Sync {
    fn call_boxed(&self, cx: Context, req: Req) -> BoxFuture<'_, Result<Resp, Error>>;
    fn failed_dyn(&self, response: &Resp) -> Option<Error>;
}

impl<E, Req> DynEndpoint<Req, E::Response> for E
where
    E: Endpoint<Req>,
    Req: Send + 'static,
{
    fn call_boxed(&self, cx: Context, req: Req) -> BoxFuture<'_, Result<E::Response, Error>> {
        Box::pin(self.call(cx, req))
    }

    fn failed_dyn(&self, response: &E::Response) -> Option<Error> {
        self.failed(response)
    }
}

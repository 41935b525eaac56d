//! The [`Endpoint`] trait: one RPC method.

use std::fmt;
use std::future::Future;

use crate::{Context, Error};

/// One RPC method: a typed request in, a typed response or an [`Error`] out, asynchronously.
///
/// This is go-kit's `endpoint.Endpoint` (`func(ctx, request) (response, error)`) with types.
/// Everything in kit-rs is built around it: transports decode a request and call an endpoint,
/// middleware wraps an endpoint in an endpoint, clients *are* endpoints, and load balancers
/// pick among endpoints.
///
/// # The contract
///
/// - **Concurrent through `&self`.** `call` takes `&self`, so one endpoint value serves any
///   number of calls at once without `&mut` or locking by the caller. An endpoint that keeps
///   mutable state synchronises it inside. This is the main difference from
///   `tower::Service`, whose `call(&mut self)` and `poll_ready` model back-pressure per
///   handle; kit-rs endpoints express back-pressure as an [`ErrorKind::Overloaded`] error from a
///   limiting middleware instead, and tower's model is still available through the bridges in
///   `kit_core::tower` (feature `tower`).
/// - **`Send + Sync + 'static`, and the returned future is `Send`**, so endpoints can be shared
///   between tasks (put one in an `Arc`, or use [`BoxEndpoint`], which is `Clone`) and calls can
///   be spawned on a multi-threaded runtime.
/// - **The future may borrow the endpoint.** A middleware can call its inner endpoint without
///   cloning anything per call.
/// - **The [`Context`] is the caller's.** An endpoint honours the context's deadline and
///   cancellation where it can (the [`crate::deadline`] middleware enforces them for any
///   endpoint), and passes the context, or one derived from it, to whatever it calls.
/// - **Errors are classified.** A "no" the caller should see as an answer is
///   [`Error::business`]; failures use the kinds that say what went wrong, so that breakers,
///   retries and transports can act on them. A response that carries its business error
///   inside (go-kit's `Failer`) says so through [`Endpoint::failed`], and every middleware reads
///   a call's outcome through [`Outcome::of_call`], which sees both.
///
/// # Writing one
///
/// A closure `Fn(Context, Req) -> impl Future<Output = Result<Resp, Error>>` becomes an
/// endpoint through [`endpoint_fn`]. For an endpoint with state, implement the trait; the
/// implementation may be an `async fn`:
///
/// ```
/// use kit_core::{Context, Endpoint, Error};
///
/// struct Uppercase;
///
/// impl Endpoint<String> for Uppercase {
///     type Response = String;
///
///     async fn call(&self, _cx: Context, s: String) -> Result<String, Error> {
///         if s.is_empty() {
///             return Err(Error::business("empty string"));
///         }
///         Ok(s.to_uppercase())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let up = Uppercase;
/// assert_eq!(up.call(Context::new(), "kit".into()).await.unwrap(), "KIT");
/// assert!(up.call(Context::new(), String::new()).await.unwrap_err().is_business());
/// # }
/// ```
///
/// [`ErrorKind::Overloaded`]: crate::ErrorKind::Overloaded
/// [`BoxEndpoint`]: crate::BoxEndpoint
/// [`Outcome::of_call`]: crate::Outcome::of_call
pub trait Endpoint<Req>: Send + Sync + 'static {
    /// The response of a successful call. `Send + 'static` so that every middleware, transport
    /// and boxed endpoint can move it between tasks without restating the bounds.
    type Response: Send + 'static;

    /// Handles one request under the caller's context.
    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl Future<Output = Result<Self::Response, Error>> + Send;

    /// The business error a successful `response` carries inside it, if any (go-kit's
    /// `Failer`); `None` by default, because most responses carry none.
    ///
    /// Middleware that count, log, trace, break or retry read a call's outcome through
    /// [`Outcome::of_call`](crate::Outcome::of_call), which asks this, so a reply such as
    /// `SumReply { v, err }` answered `Ok` is a business outcome everywhere. Mark an endpoint
    /// whose response implements [`Failer`](crate::Failer) with [`Failing`](crate::Failing)
    /// rather than implementing this by hand.
    ///
    /// **Middleware forward it.** An endpoint that wraps another and returns the inner
    /// response unchanged implements this as `self.inner.failed(response)`; every wrapper in
    /// kit-rs does. One that does not (a closure through [`endpoint_fn`], or the
    /// `tower` bridges, where tower has no such notion) hides the carried
    /// error from the layers outside it, which then see a success.
    fn failed(&self, response: &Self::Response) -> Option<Error> {
        let _ = response;
        None
    }
}

/// An endpoint whose responses carry their business errors ([`Failer`](crate::Failer)): the
/// one way to tell every middleware around it so.
///
/// ```
/// use kit_core::{endpoint_fn, Context, Endpoint, Error, Failer, Failing, Outcome};
///
/// // A reply with its error inside, as go-kit's addsvc and many protobuf APIs have them.
/// struct SumReply { v: i64, err: Option<Error> }
///
/// impl Failer for SumReply {
///     fn failed(&self) -> Option<Error> {
///         self.err.clone()
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sum = Failing::new(endpoint_fn(|_cx, (a, b): (i64, i64)| async move {
///     Ok::<_, Error>(match (a, b) {
///         (0, 0) => SumReply { v: 0, err: Some(Error::business("can't sum two zeroes")) },
///         _ => SumReply { v: a + b, err: None },
///     })
/// }));
/// let result = sum.call(Context::new(), (0, 0)).await;
/// assert!(result.is_ok());
/// assert_eq!(Outcome::of_call(&sum, &result), Outcome::Rejected);
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Failing<E> {
    inner: E,
}

impl<E> Failing<E> {
    /// Marks `endpoint`'s responses as carrying business errors.
    pub fn new(endpoint: E) -> Self {
        Failing { inner: endpoint }
    }
}

impl<E, Req> Endpoint<Req> for Failing<E>
where
    E: Endpoint<Req>,
    E::Response: crate::Failer,
{
    type Response = E::Response;

    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl Future<Output = Result<E::Response, Error>> + Send {
        self.inner.call(cx, req)
    }

    fn failed(&self, response: &E::Response) -> Option<Error> {
        crate::Failer::failed(response)
    }
}

/// Makes a closure an endpoint: `f(cx, req)` is the call.
///
/// The closure's argument types are inferred from how it is used, as with tower's
/// `service_fn`. It returns a future rather than being an `async` closure because the future
/// must be `Send`, which async closures cannot promise yet; write `|cx, req| async move { .. }`
/// and clone what the future needs out of the closure's captures first.
///
/// ```
/// use kit_core::{endpoint_fn, Context, Endpoint, Error};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sum = endpoint_fn(|_cx, (a, b): (i64, i64)| async move {
///     a.checked_add(b).ok_or_else(|| Error::business("integer overflow"))
/// });
/// assert_eq!(sum.call(Context::new(), (1, 2)).await.unwrap(), 3);
/// assert!(sum.call(Context::new(), (i64::MAX, 1)).await.unwrap_err().is_business());
/// # }
/// ```
pub fn endpoint_fn<Req, Resp, Fut, F>(f: F) -> EndpointFn<F>
where
    F: Fn(Context, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Error>> + Send,
    Resp: Send + 'static,
{
    EndpointFn { f }
}

/// A closure as an endpoint; made by [`endpoint_fn`].
//
// A wrapper rather than a blanket impl for closures: with the blanket impl, `closure.call(..)`
// is ambiguous with the standard library's unstable `Fn::call`, and rustc warns about it
// (future incompatibility) at every call site.
#[derive(Clone, Copy)]
pub struct EndpointFn<F> {
    f: F,
}

impl<F> fmt::Debug for EndpointFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointFn").finish_non_exhaustive()
    }
}

impl<F, Req, Fut, Resp> Endpoint<Req> for EndpointFn<F>
where
    F: Fn(Context, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Error>> + Send,
    Resp: Send + 'static,
{
    type Response = Resp;

    fn call(&self, cx: Context, req: Req) -> impl Future<Output = Result<Resp, Error>> + Send {
        (self.f)(cx, req)
    }
}

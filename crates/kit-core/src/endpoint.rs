//! The [`Endpoint`] trait: one RPC method.

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
///   [`tower::Service`], whose `call(&mut self)` and `poll_ready` model back-pressure per
///   handle; kit-rs endpoints express back-pressure as an [`ErrorKind::Overloaded`] error from a
///   limiting middleware instead, and tower's model is still available through the bridges in
///   [`crate::tower`].
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
///   retries and transports can act on them.
///
/// # Writing one
///
/// Any closure `Fn(Context, Req) -> impl Future<Output = Result<Resp, Error>>` that is
/// `Send + Sync + 'static` is an endpoint; [`endpoint_fn`] helps the compiler infer the
/// closure's argument types. For an endpoint with state, implement the trait; the
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
pub trait Endpoint<Req>: Send + Sync + 'static {
    /// The response of a successful call.
    type Response;

    /// Handles one request under the caller's context.
    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl Future<Output = Result<Self::Response, Error>> + Send;
}

impl<F, Req, Fut, Resp> Endpoint<Req> for F
where
    F: Fn(Context, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Error>> + Send,
{
    type Response = Resp;

    fn call(&self, cx: Context, req: Req) -> impl Future<Output = Result<Resp, Error>> + Send {
        self(cx, req)
    }
}

/// Returns `f` unchanged, as an endpoint: a closure given here gets its argument types inferred.
///
/// Closures are endpoints already; this only spares the type annotations a closure otherwise
/// needs when it is passed straight to something generic over [`Endpoint`].
///
/// ```
/// use kit_core::{endpoint_fn, Context, Endpoint, Error};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sum = endpoint_fn(|_cx, (a, b): (i64, i64)| async move {
///     a.checked_add(b).ok_or_else(|| Error::business("integer overflow"))
/// });
/// assert_eq!(sum.call(Context::new(), (1, 2)).await.unwrap(), 3);
/// # }
/// ```
pub fn endpoint_fn<Req, Resp, Fut, F>(f: F) -> F
where
    F: Fn(Context, Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Resp, Error>> + Send,
{
    f
}

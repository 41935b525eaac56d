//! [`Middleware`]: endpoint in, endpoint out; [`Chain`], which stacks them in order;
//! `Option<M>`, a middleware that may be absent; and [`Named`], which names the endpoint for
//! the middleware inside it.

use crate::{Context, Endpoint, Error};

/// Wraps an endpoint in another endpoint that adds behaviour: logging, metrics, limits,
/// deadlines, retries (go-kit's `endpoint.Middleware`, `func(Endpoint) Endpoint`).
///
/// The trait has the shape of tower's `Layer`, specialised in meaning: `E` is an endpoint, and
/// so is `Self::Endpoint`. Any closure `Fn(E) -> E2` is a middleware. [`Chain`] applies several
/// in order, and `kit_core::tower` (feature `tower`) converts between middleware and tower layers both ways.
///
/// ```
/// use kit_core::{endpoint_fn, BoxEndpoint, Context, Endpoint, Middleware};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // A closure middleware over boxed endpoints, go-kit style.
/// let doubled = |next: BoxEndpoint<i64, i64>| {
///     BoxEndpoint::new(endpoint_fn(move |cx, n: i64| {
///         let next = next.clone();
///         async move { Ok(next.call(cx, n).await? * 2) }
///     }))
/// };
///
/// let inc = BoxEndpoint::new(endpoint_fn(|_cx, n: i64| async move { Ok(n + 1) }));
/// let ep = doubled.wrap(inc);
/// assert_eq!(ep.call(Context::new(), 1).await.unwrap(), 4);
/// # }
/// ```
pub trait Middleware<E> {
    /// The endpoint this middleware produces around `E`.
    type Endpoint;

    /// Wraps `inner`.
    fn wrap(&self, inner: E) -> Self::Endpoint;
}

impl<F, E, Wrapped> Middleware<E> for F
where
    F: Fn(E) -> Wrapped,
{
    type Endpoint = Wrapped;

    fn wrap(&self, inner: E) -> Wrapped {
        self(inner)
    }
}

/// The middleware that changes nothing; the start of every [`Chain`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

impl<E> Middleware<E> for Identity {
    type Endpoint = E;

    fn wrap(&self, inner: E) -> E {
        inner
    }
}

/// Middleware applied in order: the first added is the outermost (go-kit's `endpoint.Chain`).
///
/// A call through `Chain::new().with(a).with(b).with(c).wrap(ep)` enters `a`, then `b`, then
/// `c`, then `ep`, and the response passes back out through `c`, `b`, `a`. Read it top to
/// bottom as the path of a request. Each `with` is resolved at compile time: a chain costs what
/// its middleware cost, nothing more.
///
/// ```
/// use std::time::Duration;
/// use kit_core::{endpoint_fn, Chain, Context, Endpoint, Error, Middleware};
/// use kit_core::deadline::Deadline;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ep = Chain::new()
///     .with(Deadline::with_timeout(Duration::from_millis(50)))
///     .wrap(endpoint_fn(|_cx, ()| async {
///         tokio::time::sleep(Duration::from_secs(5)).await;
///         Ok::<_, Error>(())
///     }));
/// let err = ep.call(Context::new(), ()).await.unwrap_err();
/// assert_eq!(err.to_string(), "deadline exceeded");
/// # }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Chain<M = Identity> {
    middleware: M,
}

impl Chain {
    /// An empty chain.
    pub fn new() -> Self {
        Chain {
            middleware: Identity,
        }
    }
}

impl<M> Chain<M> {
    /// Adds `next` inside every middleware added so far.
    pub fn with<N>(self, next: N) -> Chain<Stack<N, M>> {
        Chain {
            middleware: Stack {
                inner: next,
                outer: self.middleware,
            },
        }
    }
}

impl<E, M: Middleware<E>> Middleware<E> for Chain<M> {
    type Endpoint = M::Endpoint;

    fn wrap(&self, inner: E) -> M::Endpoint {
        self.middleware.wrap(inner)
    }
}

/// Two middleware, one inside the other: the type a [`Chain`] builds up.
#[derive(Clone, Copy, Debug)]
pub struct Stack<Inner, Outer> {
    inner: Inner,
    outer: Outer,
}

impl<E, Inner, Outer> Middleware<E> for Stack<Inner, Outer>
where
    Inner: Middleware<E>,
    Outer: Middleware<Inner::Endpoint>,
{
    type Endpoint = Outer::Endpoint;

    fn wrap(&self, endpoint: E) -> Outer::Endpoint {
        self.outer.wrap(self.inner.wrap(endpoint))
    }
}

/// A middleware that may be absent: `Some` wraps, `None` leaves the endpoint as it is. Either
/// way the endpoint has one type, so a stack of optional layers is still resolved at compile
/// time and boxed, if at all, once.
///
/// ```
/// use std::time::Duration;
/// use kit_core::{endpoint_fn, Chain, Context, Endpoint, Error, Middleware};
/// use kit_core::deadline::Deadline;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let timeout: Option<Duration> = None; // from a flag
/// let ep = Chain::new()
///     .with(timeout.map(Deadline::with_timeout))
///     .wrap(endpoint_fn(|_cx, n: i64| async move { Ok::<_, Error>(n + 1) }));
/// assert_eq!(ep.call(Context::new(), 1).await.unwrap(), 2);
/// # }
/// ```
impl<E, M: Middleware<E>> Middleware<E> for Option<M> {
    type Endpoint = OptionalEndpoint<M::Endpoint, E>;

    fn wrap(&self, inner: E) -> Self::Endpoint {
        OptionalEndpoint(match self {
            Some(middleware) => Optional::Wrapped(middleware.wrap(inner)),
            None => Optional::Bare(inner),
        })
    }
}

/// The endpoint an optional middleware (`Option<M>`) makes: `W` when it was there, else `E`.
#[derive(Clone, Debug)]
pub struct OptionalEndpoint<W, E>(Optional<W, E>);

#[derive(Clone, Debug)]
enum Optional<W, E> {
    Wrapped(W),
    Bare(E),
}

impl<W, E, Req> Endpoint<Req> for OptionalEndpoint<W, E>
where
    W: Endpoint<Req>,
    E: Endpoint<Req, Response = W::Response>,
    Req: Send,
{
    type Response = W::Response;

    // Not an `async fn`: the future is the chosen endpoint's and a tag, without room kept for
    // the context and request an `async fn` would hold beside it.
    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl std::future::Future<Output = Result<W::Response, Error>> + Send {
        match &self.0 {
            Optional::Wrapped(endpoint) => OptionalCall::Wrapped {
                call: endpoint.call(cx, req),
            },
            Optional::Bare(endpoint) => OptionalCall::Bare {
                call: endpoint.call(cx, req),
            },
        }
    }

    fn failed(&self, response: &W::Response) -> Option<Error> {
        match &self.0 {
            Optional::Wrapped(endpoint) => endpoint.failed(response),
            Optional::Bare(endpoint) => endpoint.failed(response),
        }
    }
}

pin_project_lite::pin_project! {
    /// The call of an [`OptionalEndpoint`]: the wrapped endpoint's or the bare one's.
    #[project = OptionalCallProjection]
    enum OptionalCall<W, B> {
        Wrapped { #[pin] call: W },
        Bare { #[pin] call: B },
    }
}

impl<W, B> std::future::Future for OptionalCall<W, B>
where
    W: std::future::Future,
    B: std::future::Future<Output = W::Output>,
{
    type Output = W::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        task: &mut std::task::Context<'_>,
    ) -> std::task::Poll<W::Output> {
        match self.project() {
            OptionalCallProjection::Wrapped { call } => call.poll(task),
            OptionalCallProjection::Bare { call } => call.poll(task),
        }
    }
}

/// Names the endpoint for every middleware inside it: each call's context says `name`
/// ([`Context::endpoint_name`]), so that logging and tracing are given the name once, here,
/// rather than each its own copy. Put it outermost; kit-server's `ServerStack` does.
///
/// ```
/// use kit_core::{endpoint_fn, Chain, Context, Endpoint, Error, Middleware, Named};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ep = Chain::new()
///     .with(Named::new("sum"))
///     .wrap(endpoint_fn(|cx: Context, ()| async move { Ok::<_, Error>(cx.endpoint_name()) }));
/// assert_eq!(ep.call(Context::new(), ()).await.unwrap(), Some("sum"));
/// # }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Named {
    name: &'static str,
}

impl Named {
    /// Names the endpoint `name`.
    pub fn new(name: &'static str) -> Self {
        Named { name }
    }
}

impl<E> Middleware<E> for Named {
    type Endpoint = NamedEndpoint<E>;

    fn wrap(&self, inner: E) -> NamedEndpoint<E> {
        NamedEndpoint {
            inner,
            name: self.name,
        }
    }
}

/// An endpoint whose calls' contexts carry its name; made by [`Named`].
#[derive(Clone, Debug)]
pub struct NamedEndpoint<E> {
    inner: E,
    name: &'static str,
}

impl<E: Endpoint<Req>, Req> Endpoint<Req> for NamedEndpoint<E> {
    type Response = E::Response;

    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl std::future::Future<Output = Result<E::Response, Error>> + Send {
        self.inner.call(cx.with_endpoint_name(self.name), req)
    }

    fn failed(&self, response: &E::Response) -> Option<Error> {
        self.inner.failed(response)
    }
}

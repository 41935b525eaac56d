//! The standard server-side middleware stack on an endpoint.

use std::time::Duration;

use kit_core::concurrency::ConcurrencyLimit;
use kit_core::deadline::Deadline;
use kit_core::{BoxEndpoint, Chain, Endpoint, Identity, Middleware, Named, Stack};
use kit_log::{Logger, Logging};
use kit_metrics::{Counter, Histogram, MetricError, Metrics};

/// The middleware every served endpoint wants, in one builder, in the order that makes each
/// see what it should:
///
/// 0. the name, outermost: the stack's method in every call's context (kit-core's
///    [`Named`]), which logging and tracing read, so it is given once, to
///    [`ServerStack::new`];
/// 1. logging: every call, with what the layers below made of it;
/// 2. metrics: counts and times every call, including those the limits refuse;
/// 3. what [`ServerStack::with`] adds: tracing (kit-trace's `Tracing`), then
///    kit-client's `RateLimit` and `Breaker`, as addsvc does with `-rate-limit` and `-breaker`;
/// 4. timeout: the call's deadline tightened to at most this;
/// 5. concurrency limit, innermost: calls over the limit are refused at once as overloaded
///    (HTTP 429, gRPC `RESOURCE_EXHAUSTED`) rather than queued, so that the timeout above does not
///    spend itself waiting.
///
/// Each layer is optional, and the stack is one statically typed [`Chain`] of those set: a layer
/// not set is [`Identity`], each setter changes the stack's type (as tower's `ServiceBuilder`
/// does), and [`wrap`](ServerStack::wrap) boxes the result once, at the edge. So the stack costs
/// what the same layers chained by hand cost (docs/PERFORMANCE.md measures both). A middleware
/// wanted only sometimes goes in [`with`](ServerStack::with) as an `Option` (kit-core's
/// `Option<M>` middleware).
///
/// ```
/// use std::time::Duration;
/// use kit_core::{endpoint_fn, Context, Endpoint, Error};
/// use kit_server::ServerStack;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let sum = ServerStack::new("sum")
///     .timeout(Duration::from_secs(1))
///     .concurrency_limit(100)
///     .wrap(endpoint_fn(|_cx, (a, b): (i64, i64)| async move { Ok::<_, Error>(a + b) }));
/// assert_eq!(sum.call(Context::new(), (1, 2)).await.unwrap(), 3);
/// # }
/// ```
#[derive(Clone)]
pub struct ServerStack<L = Identity, M = Identity, X = Identity, T = Identity, C = Identity> {
    method: &'static str,
    logging: L,
    metrics: M,
    extra: Chain<X>,
    timeout: T,
    concurrency_limit: C,
}

/// The layers of a [`ServerStack`] as one chain, outermost first: the endpoint's name in the
/// context, logging, metrics, what [`with`](ServerStack::with) added, the timeout, the
/// concurrency limit.
pub type Layers<L, M, X, T, C> =
    Chain<Stack<C, Stack<T, Stack<Chain<X>, Stack<M, Stack<L, Stack<Named, Identity>>>>>>>;

/// A stack with metrics counted in `R` and timed in `D`.
type Counted<L, R, D, X, T, C> = ServerStack<L, Metrics<R, D>, X, T, C>;

impl<L, M, X, T, C> std::fmt::Debug for ServerStack<L, M, X, T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |name: &'static str| name != std::any::type_name::<Identity>();
        f.debug_struct("ServerStack")
            .field("method", &self.method)
            .field("logging", &set(std::any::type_name::<L>()))
            .field("metrics", &set(std::any::type_name::<M>()))
            .field("extra", &std::any::type_name::<X>())
            .field("timeout", &set(std::any::type_name::<T>()))
            .field("concurrency_limit", &set(std::any::type_name::<C>()))
            .finish()
    }
}

impl ServerStack {
    /// An empty stack for the method named `method`: the name every call's context carries, for
    /// logs, traces and metrics.
    pub fn new(method: &'static str) -> Self {
        ServerStack {
            method,
            logging: Identity,
            metrics: Identity,
            extra: Chain::new(),
            timeout: Identity,
            concurrency_limit: Identity,
        }
    }
}

impl<L, M, X, T, C> ServerStack<L, M, X, T, C> {
    /// Logs every call to `logger` ([`Logging`]); the records' place (kit-log's
    /// `caller`) is where this is called, in the service's code.
    #[track_caller]
    pub fn logging(self, logger: impl Into<Logger>) -> ServerStack<Logging, M, X, T, C> {
        ServerStack {
            logging: Logging::new(logger),
            method: self.method,
            metrics: self.metrics,
            extra: self.extra,
            timeout: self.timeout,
            concurrency_limit: self.concurrency_limit,
        }
    }

    /// Counts and times every call ([`Metrics`]); `requests` and `durations` must be
    /// declared with [`METHOD_OUTCOME_LABELS`](kit_metrics::METHOD_OUTCOME_LABELS).
    pub fn metrics<R: Counter, D: Histogram>(
        self,
        requests: R,
        durations: D,
    ) -> Result<Counted<L, R, D, X, T, C>, MetricError> {
        Ok(ServerStack {
            metrics: Metrics::new(self.method, requests, durations)?,
            method: self.method,
            logging: self.logging,
            extra: self.extra,
            timeout: self.timeout,
            concurrency_limit: self.concurrency_limit,
        })
    }

    /// Adds `middleware` between metrics and the timeout (tracing, rate limiting, a breaker),
    /// inside those added before: the first added is the outermost. An `Option` of a
    /// middleware adds it only when it is `Some`.
    pub fn with<N>(self, middleware: N) -> ServerStack<L, M, Stack<N, X>, T, C> {
        ServerStack {
            extra: self.extra.with(middleware),
            method: self.method,
            logging: self.logging,
            metrics: self.metrics,
            timeout: self.timeout,
            concurrency_limit: self.concurrency_limit,
        }
    }

    /// Gives every call at most `timeout` ([`Deadline::with_timeout`]).
    pub fn timeout(self, timeout: Duration) -> ServerStack<L, M, X, Deadline, C> {
        ServerStack {
            timeout: Deadline::with_timeout(timeout),
            method: self.method,
            logging: self.logging,
            metrics: self.metrics,
            extra: self.extra,
            concurrency_limit: self.concurrency_limit,
        }
    }

    /// Refuses calls beyond `limit` in flight with an overloaded error (kit-core's
    /// [`ConcurrencyLimit`]). The endpoints one stack wraps share the limit: give each endpoint
    /// a stack of its own for a limit each.
    pub fn concurrency_limit(self, limit: usize) -> ServerStack<L, M, X, T, ConcurrencyLimit> {
        ServerStack {
            concurrency_limit: ConcurrencyLimit::new(limit),
            method: self.method,
            logging: self.logging,
            metrics: self.metrics,
            extra: self.extra,
            timeout: self.timeout,
        }
    }

    /// The stack's layers as one chain, outermost first.
    pub fn layers(&self) -> Layers<L, M, X, T, C>
    where
        L: Clone,
        M: Clone,
        X: Clone,
        T: Clone,
        C: Clone,
    {
        Chain::new()
            .with(Named::new(self.method))
            .with(self.logging.clone())
            .with(self.metrics.clone())
            .with(self.extra.clone())
            .with(self.timeout.clone())
            .with(self.concurrency_limit.clone())
    }

    /// Wraps `endpoint` in the stack, boxed once.
    pub fn wrap<E, Req>(&self, endpoint: E) -> BoxEndpoint<Req, E::Response>
    where
        E: Endpoint<Req>,
        Req: Send + 'static,
        L: Clone,
        M: Clone,
        X: Clone,
        T: Clone,
        C: Clone,
        Layers<L, M, X, T, C>: Middleware<E>,
        <Layers<L, M, X, T, C> as Middleware<E>>::Endpoint: Endpoint<Req, Response = E::Response>,
    {
        BoxEndpoint::new(self.layers().wrap(endpoint))
    }
}

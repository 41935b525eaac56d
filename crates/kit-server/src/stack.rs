//! The standard server-side middleware stack on an endpoint.

use std::sync::Arc;
use std::time::Duration;

use kit_core::concurrency::ConcurrencyLimit;
use kit_core::deadline::Deadline;
use kit_core::{BoxEndpoint, Endpoint, Middleware};
use kit_log::{Logger, Logging};
use kit_metrics::discard::Discard;
use kit_metrics::{Counter, Histogram, MetricError, Metrics};

/// The middleware every served endpoint wants, in one builder, in the order that makes each
/// see what it should:
///
/// 1. logging, outermost: every call, with what the layers below made of it;
/// 2. metrics: counts and times every call, including those the limits refuse;
/// 3. what [`ServerStack::with`] adds: tracing (kit-trace's `Tracing`), then
///    kit-client's `RateLimit` and `Breaker`, as addsvc does with `-rate-limit` and `-breaker`;
/// 4. timeout: the call's deadline tightened to at most this;
/// 5. concurrency limit, innermost: calls over the limit are refused at once as overloaded
///    (HTTP 429, gRPC `RESOURCE_EXHAUSTED`) rather than queued, so that the timeout above does not
///    spend itself waiting.
///
/// Each layer is optional. [`wrap`](ServerStack::wrap) boxes the result once, at the edge.
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
pub struct ServerStack<Req, Resp, C = Discard, H = Discard> {
    method: &'static str,
    logging: Option<Logging>,
    metrics: Option<Metrics<C, H>>,
    extra: Vec<Layer<Req, Resp>>,
    timeout: Option<Duration>,
    concurrency_limit: Option<usize>,
}

/// A middleware over boxed endpoints, for [`ServerStack::with`].
type Layer<Req, Resp> = Arc<dyn Fn(BoxEndpoint<Req, Resp>) -> BoxEndpoint<Req, Resp> + Send + Sync>;

impl<Req, Resp, C, H> std::fmt::Debug for ServerStack<Req, Resp, C, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerStack")
            .field("method", &self.method)
            .field("logging", &self.logging.is_some())
            .field("metrics", &self.metrics.is_some())
            .field("extra", &self.extra.len())
            .field("timeout", &self.timeout)
            .field("concurrency_limit", &self.concurrency_limit)
            .finish()
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> ServerStack<Req, Resp> {
    /// An empty stack for the method named `method` (the name logs and metrics use).
    pub fn new(method: &'static str) -> Self {
        ServerStack {
            method,
            logging: None,
            metrics: None,
            extra: Vec::new(),
            timeout: None,
            concurrency_limit: None,
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static, C: Counter, H: Histogram>
    ServerStack<Req, Resp, C, H>
{
    /// Logs every call to `logger` ([`Logging`]); the records' place (kit-log's
    /// `caller`) is where this is called, in the service's code.
    #[track_caller]
    pub fn logging(mut self, logger: impl Into<Logger>) -> Self {
        self.logging = Some(Logging::new(logger, self.method));
        self
    }

    /// Counts and times every call ([`Metrics`]); `requests` and `durations` must be
    /// declared with [`METHOD_OUTCOME_LABELS`](kit_metrics::METHOD_OUTCOME_LABELS).
    pub fn metrics<C2: Counter, H2: Histogram>(
        self,
        requests: C2,
        durations: H2,
    ) -> Result<ServerStack<Req, Resp, C2, H2>, MetricError> {
        Ok(ServerStack {
            metrics: Some(Metrics::new(self.method, requests, durations)?),
            method: self.method,
            logging: self.logging,
            extra: self.extra,
            timeout: self.timeout,
            concurrency_limit: self.concurrency_limit,
        })
    }

    /// Gives every call at most `timeout` ([`Deadline::with_timeout`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Refuses calls beyond `limit` in flight with an overloaded error (kit-core's
    /// [`ConcurrencyLimit`]).
    pub fn concurrency_limit(mut self, limit: usize) -> Self {
        self.concurrency_limit = Some(limit);
        self
    }

    /// Adds `middleware` between metrics and the timeout (tracing, rate limiting, a breaker).
    /// Added middleware apply in order, the first outermost; each is given the boxed endpoint
    /// below it.
    pub fn with<M>(mut self, middleware: M) -> Self
    where
        M: Middleware<BoxEndpoint<Req, Resp>> + Send + Sync + 'static,
        M::Endpoint: Endpoint<Req, Response = Resp>,
    {
        self.extra.push(Arc::new(move |inner| {
            BoxEndpoint::new(middleware.wrap(inner))
        }));
        self
    }

    /// Wraps `endpoint` in the stack.
    pub fn wrap<E>(&self, endpoint: E) -> BoxEndpoint<Req, Resp>
    where
        E: Endpoint<Req, Response = Resp>,
    {
        let inner = match self.concurrency_limit {
            Some(limit) => BoxEndpoint::new(ConcurrencyLimit::new(limit).wrap(endpoint)),
            None => BoxEndpoint::new(endpoint),
        };
        let mut boxed = match self.timeout {
            Some(timeout) => BoxEndpoint::new(Deadline::with_timeout(timeout).wrap(inner)),
            None => inner,
        };
        for layer in self.extra.iter().rev() {
            boxed = layer(boxed);
        }
        let boxed = match &self.metrics {
            Some(metrics) => BoxEndpoint::new(metrics.wrap(boxed)),
            None => boxed,
        };
        match &self.logging {
            Some(logging) => BoxEndpoint::new(logging.wrap(boxed)),
            None => boxed,
        }
    }
}

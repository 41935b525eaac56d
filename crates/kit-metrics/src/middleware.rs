//! Counting and timing every call of an endpoint (go-kit's instrumenting middleware).

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::Instant;

use kit_core::{Context, Endpoint, Error, Middleware, Outcome};

use crate::{Counter, Histogram, MetricError};

/// The label names [`Metrics`] needs its counter and histogram declared with, in this
/// order: `method`, `success` (`true`/`false`) and `outcome` (`success`, `rejected` for business
/// errors and bad requests, `failure` for faults of the service). A business error thus counts
/// as `success="false"` but stays apart from failures.
pub const METHOD_OUTCOME_LABELS: [&str; 3] = ["method", "success", "outcome"];

/// The instrumenting middleware: each call adds 1 to a request counter and observes its
/// duration in seconds in a histogram, both labelled by method and outcome
/// ([`METHOD_OUTCOME_LABELS`]).
///
/// The outcome is kit-core's [`Outcome::of_call`]: a business error carried in a successful
/// response (an endpoint marked with [`kit_core::Failing`]) counts as `rejected`. The three
/// labelled series are resolved when the middleware is made, so a mislabelled metric is an
/// error there and calls pay no label lookup.
///
/// ```
/// use kit_core::{endpoint_fn, Chain, Context, Endpoint, Error, Middleware};
/// use kit_metrics::{memory::{MemoryCounter, MemoryHistogram}, Metrics, METHOD_OUTCOME_LABELS};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let requests = MemoryCounter::new("requests_total", &METHOD_OUTCOME_LABELS).unwrap();
/// let duration = MemoryHistogram::new("request_duration_seconds", &METHOD_OUTCOME_LABELS).unwrap();
/// let sum = Chain::new()
///     .with(Metrics::new("sum", requests.clone(), duration).unwrap())
///     .wrap(endpoint_fn(|_cx, (a, b): (i64, i64)| async move { Ok::<_, Error>(a + b) }));
/// sum.call(Context::new(), (1, 2)).await.unwrap();
/// assert_eq!(requests.value(&["sum", "true", "success"]), 1.0);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Metrics<C, H> {
    /// By outcome: success, rejected, failure.
    requests: [C; 3],
    durations: [H; 3],
}

fn index(outcome: Outcome) -> usize {
    match outcome {
        Outcome::Success => 0,
        Outcome::Rejected => 1,
        Outcome::Failure => 2,
    }
}

impl<C: Counter, H: Histogram> Metrics<C, H> {
    /// Counts calls of the method named `method` in `requests` and times them in `durations`;
    /// both must have been declared with [`METHOD_OUTCOME_LABELS`].
    pub fn new(method: &str, requests: C, durations: H) -> Result<Self, MetricError> {
        let labels = |o: Outcome| -> [&str; 3] {
            let success = if o == Outcome::Success {
                "true"
            } else {
                "false"
            };
            [method, success, o.as_str()]
        };
        let outcomes = [Outcome::Success, Outcome::Rejected, Outcome::Failure];
        let [s, r, f] = outcomes.map(labels);
        Ok(Metrics {
            requests: [requests.with(&s)?, requests.with(&r)?, requests.with(&f)?],
            durations: [
                durations.with(&s)?,
                durations.with(&r)?,
                durations.with(&f)?,
            ],
        })
    }
}

impl<E, C: Counter, H: Histogram> Middleware<E> for Metrics<C, H> {
    type Endpoint = MetricsEndpoint<E, C, H>;

    fn wrap(&self, inner: E) -> Self::Endpoint {
        MetricsEndpoint {
            inner,
            metrics: self.clone(),
        }
    }
}

/// An endpoint whose calls are counted and timed; made by [`Metrics`].
#[derive(Clone, Debug)]
pub struct MetricsEndpoint<E, C, H> {
    inner: E,
    metrics: Metrics<C, H>,
}

impl<E, C, H, Req> Endpoint<Req> for MetricsEndpoint<E, C, H>
where
    E: Endpoint<Req>,
    C: Counter,
    H: Histogram,
    Req: Send,
{
    type Response = E::Response;

    // Not an `async fn`, which would hold the context and the request for the whole call
    // beside the inner call's future that took them (and an `async` block awaiting that
    // future would hold it twice): the call starts when it is made.
    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl Future<Output = Result<E::Response, Error>> + Send {
        MeasuredCall {
            start: Instant::now(),
            call: self.inner.call(cx, req),
            endpoint: self,
            _request: PhantomData,
        }
    }

    fn failed(&self, response: &E::Response) -> Option<Error> {
        self.inner.failed(response)
    }
}

pin_project_lite::pin_project! {
    /// A call of a [`MetricsEndpoint`]: the inner call, then its count and duration.
    struct MeasuredCall<'a, E, C, H, F, Req> {
        #[pin]
        call: F,
        endpoint: &'a MetricsEndpoint<E, C, H>,
        start: Instant,
        _request: PhantomData<fn(Req)>,
    }
}

impl<E, C, H, F, Req> Future for MeasuredCall<'_, E, C, H, F, Req>
where
    E: Endpoint<Req>,
    C: Counter,
    H: Histogram,
    F: Future<Output = Result<E::Response, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let result = ready!(this.call.poll(task));
        let endpoint: &MetricsEndpoint<E, C, H> = this.endpoint;
        let i = index(Outcome::of_call(&endpoint.inner, &result));
        endpoint.metrics.requests[i].add(1.0);
        endpoint.metrics.durations[i].observe(this.start.elapsed().as_secs_f64());
        Poll::Ready(result)
    }
}

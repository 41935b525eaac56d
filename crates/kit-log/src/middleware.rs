//! Logs every call of an endpoint: method, outcome, duration and error (go-kit's
//! `LoggingMiddleware`).

use std::time::Instant;

use kit_core::{Context, Endpoint, Error, Middleware, Outcome};

use crate::logger::Logger;

/// The logging middleware: one record per call, after the call.
///
/// A record holds `method`, `outcome` (`success`, `rejected` or `failure`, see
/// [`kit_core::Outcome`]), `took` (the call's duration, as `1.234ms`) and, for errors, `err`
/// (the message) and `kind`. Failures are logged at `error`; successes and rejections (business
/// errors, bad requests) at `info`, because they are answers, not faults.
///
/// ```
/// use kit_core::{endpoint_fn, Chain, Context, Endpoint, Error, Middleware};
/// use kit_log::{EndpointLogging, Logfmt};
/// use slog::{o, Drain, Logger};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let log = Logger::root(Logfmt::new(std::io::stderr()).fuse(), o!());
/// let sum = Chain::new()
///     .with(EndpointLogging::new(log, "sum"))
///     .wrap(endpoint_fn(|_cx, (a, b): (i64, i64)| async move { Ok::<_, Error>(a + b) }));
/// sum.call(Context::new(), (1, 2)).await.unwrap();
/// // level=info method=sum outcome=success took=2.1µs
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct EndpointLogging<B = NoBusinessErrors> {
    logger: Logger,
    method: &'static str,
    business_errors: B,
}

impl EndpointLogging {
    /// Logs calls of the method named `method` to `logger` (a kit [`Logger`], or a
    /// `slog::Logger`).
    pub fn new(logger: impl Into<Logger>, method: &'static str) -> Self {
        EndpointLogging {
            logger: logger.into(),
            method,
            business_errors: NoBusinessErrors,
        }
    }

    /// For services whose responses carry their business errors (go-kit's `Failer`): `errors`
    /// reads the error out of a successful response, and such a call is logged with its `err`
    /// and `kind`, as `rejected` (or as `failure` at level error if the carried error is a
    /// failure kind). Pass the response type's [`Failer::failed`](kit_core::Failer::failed)
    /// (`MyReply::failed`) when it implements that trait.
    pub fn business_errors<B>(self, errors: B) -> EndpointLogging<B> {
        EndpointLogging {
            logger: self.logger,
            method: self.method,
            business_errors: errors,
        }
    }
}

/// Where a response's business error is found; see [`EndpointLogging::business_errors`].
pub trait BusinessErrors<R>: Clone + Send + Sync + 'static {
    /// The business error `response` carries, if any.
    fn error_of(&self, response: &R) -> Option<Error>;
}

/// Responses carry no business errors: only `Err` results are errors. The default.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoBusinessErrors;

impl<R> BusinessErrors<R> for NoBusinessErrors {
    fn error_of(&self, _: &R) -> Option<Error> {
        None
    }
}

impl<R, F> BusinessErrors<R> for F
where
    F: Fn(&R) -> Option<Error> + Clone + Send + Sync + 'static,
{
    fn error_of(&self, response: &R) -> Option<Error> {
        self(response)
    }
}

impl<E, B: Clone> Middleware<E> for EndpointLogging<B> {
    type Endpoint = LoggedEndpoint<E, B>;

    fn wrap(&self, inner: E) -> LoggedEndpoint<E, B> {
        LoggedEndpoint {
            inner,
            logger: self.logger.clone(),
            method: self.method,
            business_errors: self.business_errors.clone(),
        }
    }
}

/// An endpoint whose calls are logged; made by [`EndpointLogging`].
#[derive(Clone, Debug)]
pub struct LoggedEndpoint<E, B = NoBusinessErrors> {
    inner: E,
    logger: Logger,
    method: &'static str,
    business_errors: B,
}

impl<E, B, Req> Endpoint<Req> for LoggedEndpoint<E, B>
where
    E: Endpoint<Req>,
    B: BusinessErrors<E::Response>,
    Req: Send,
{
    type Response = E::Response;

    async fn call(&self, cx: Context, req: Req) -> Result<E::Response, Error> {
        let start = Instant::now();
        let result = self.inner.call(cx, req).await;
        let took = start.elapsed();
        let (log, method) = (&self.logger, self.method);
        let carried = result
            .as_ref()
            .ok()
            .and_then(|response| self.business_errors.error_of(response));
        let outcome = match &carried {
            Some(err) => Outcome::of::<()>(&Err(err.clone())),
            None => Outcome::of(&result),
        };
        let took = format_args!("{took:?}");
        match (result.as_ref().err().or(carried.as_ref()), outcome) {
            (None, _) => {
                crate::info!(log, "method", method, "outcome", "success", "took", took);
            }
            (Some(err), Outcome::Failure) => {
                let message = format_args!("{err}");
                crate::error!(
                    log,
                    "method",
                    method,
                    "outcome",
                    "failure",
                    "took",
                    took,
                    "err",
                    message,
                    "kind",
                    err.kind().as_str()
                );
            }
            (Some(err), _) => {
                let message = format_args!("{err}");
                crate::info!(
                    log,
                    "method",
                    method,
                    "outcome",
                    "rejected",
                    "took",
                    took,
                    "err",
                    message,
                    "kind",
                    err.kind().as_str()
                );
            }
        }
        result
    }
}

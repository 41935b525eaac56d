//! Logs every call of an endpoint: method, outcome, duration and error (go-kit's
//! `LoggingMiddleware`).

use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Poll, ready};
use std::time::Instant;

use kit_core::{Context, Endpoint, Error, Middleware, Outcome};

use crate::logger::Logger;
use slog::{Level, RecordLocation, RecordStatic};

/// The logging middleware: one record per call, after the call.
///
/// A record holds `method` (the endpoint's name, from the context: kit-core's
/// [`Named`](kit_core::Named) sets it once for every middleware, and kit-server's `ServerStack`
/// does; `unnamed` without it), `outcome` (`success`, `rejected` or `failure`, see
/// [`kit_core::Outcome`]), `took` (the call's duration, as `1.234ms`) and, for errors, `err`
/// (the message) and `kind`. Failures are logged at `error`; successes and rejections (business
/// errors, bad requests) at `info`, because they are answers, not faults.
///
/// ```
/// use kit_core::{endpoint_fn, Chain, Context, Endpoint, Error, Middleware, Named};
/// use kit_log::{Logging, Logfmt};
/// use slog::{o, Drain, Logger};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let log = Logger::root(Logfmt::new(std::io::stderr()).fuse(), o!());
/// let sum = Chain::new()
///     .with(Named::new("sum"))
///     .with(Logging::new(log))
///     .wrap(endpoint_fn(|_cx, (a, b): (i64, i64)| async move { Ok::<_, Error>(a + b) }));
/// sum.call(Context::new(), (1, 2)).await.unwrap();
/// // level=info method=sum outcome=success took=2.1µs
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Logging {
    logger: Logger,
    at: &'static Location<'static>,
}

impl Logging {
    /// Logs calls to `logger` (a kit [`Logger`], or a `slog::Logger`), each under the name its
    /// context gives the endpoint.
    ///
    /// A business error carried in a successful response (an endpoint marked with
    /// [`kit_core::Failing`]) is logged as the `rejected` call it is, with its `err` and `kind`,
    /// as kit-core's [`Outcome::of_call`] reads it.
    ///
    /// The records' place (what [`caller`](crate::caller) shows) is where this was called, in
    /// the service's own code, rather than this file, which every service would share; a
    /// function that makes the middleware for its caller passes its own caller on by being
    /// `#[track_caller]` too (as kit-server's `ServerStack::logging` is).
    #[track_caller]
    pub fn new(logger: impl Into<Logger>) -> Self {
        Logging {
            logger: logger.into(),
            at: Location::caller(),
        }
    }
}

impl<E> Middleware<E> for Logging {
    type Endpoint = LoggingEndpoint<E>;

    fn wrap(&self, inner: E) -> LoggingEndpoint<E> {
        LoggingEndpoint {
            inner,
            logger: self.logger.clone(),
            at: self.at,
        }
    }
}

/// An endpoint whose calls are logged; made by [`Logging`].
#[derive(Clone, Debug)]
pub struct LoggingEndpoint<E> {
    inner: E,
    logger: Logger,
    /// Where the middleware was made: the records' place.
    at: &'static Location<'static>,
}

impl<E, Req> Endpoint<Req> for LoggingEndpoint<E>
where
    E: Endpoint<Req>,
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
        let method = cx.endpoint_name().unwrap_or("unnamed");
        LoggedCall {
            start: Instant::now(),
            call: self.inner.call(cx, req),
            endpoint: self,
            method,
            _request: PhantomData,
        }
    }

    fn failed(&self, response: &E::Response) -> Option<Error> {
        self.inner.failed(response)
    }
}

impl<E> LoggingEndpoint<E> {
    /// Writes the record of a call to `method` started at `start`.
    fn log<Req>(
        &self,
        method: &str,
        start: Instant,
        result: Result<E::Response, Error>,
    ) -> Result<E::Response, Error>
    where
        E: Endpoint<Req>,
    {
        let took = start.elapsed();
        let mut log = &self.logger;
        let took = Took(took);
        let error = Outcome::error_of(&self.inner, &result);
        // What went wrong underneath (an upstream's text, an I/O error) is logged as `cause`:
        // the message alone goes on the wire, so the detail is here or nowhere.
        let with_cause = error
            .as_ref()
            .and_then(Error::detail)
            .map(|detail| log.with(crate::kv!("cause", detail)));
        if let Some(with_cause) = &with_cause {
            log = with_cause;
        }
        let place = RecordLocation {
            file: self.at.file(),
            line: self.at.line(),
            column: self.at.column(),
            function: "",
            module: "",
        };
        let at = |level| RecordStatic {
            location: &place,
            level,
            tag: "",
        };
        let outcome = |err: &Error| match Outcome::of_error(err) {
            Outcome::Failure => (Level::Error, "failure"),
            _ => (Level::Info, "rejected"),
        };
        let no_message = format_args!("");
        match error {
            None => {
                log.write(
                    &at(Level::Info),
                    &no_message,
                    &[
                        ("method", &method),
                        ("outcome", &"success"),
                        ("took", &took),
                    ],
                );
            }
            Some(err) => {
                let (level, outcome) = outcome(&err);
                let message = format_args!("{err}");
                log.write(
                    &at(level),
                    &no_message,
                    &[
                        ("method", &method),
                        ("outcome", &outcome),
                        ("took", &took),
                        ("err", &message),
                        ("kind", &err.kind().as_str()),
                    ],
                );
            }
        }
        result
    }
}

/// A call's duration as `Duration`'s `Debug` writes it (`1.234ms`), without `fmt`.
struct Took(std::time::Duration);

impl slog::Value for Took {
    fn serialize(
        &self,
        _: &slog::Record<'_>,
        key: slog::Key,
        ser: &mut dyn slog::Serializer,
    ) -> slog::Result {
        crate::text::with_scratch(|scratch| ser.emit_str(key, scratch.duration(self.0)))
    }
}

pin_project_lite::pin_project! {
    /// A call of a [`LoggingEndpoint`]: the inner call, then its record.
    struct LoggedCall<'a, E, F, Req> {
        #[pin]
        call: F,
        endpoint: &'a LoggingEndpoint<E>,
        method: &'static str,
        start: Instant,
        _request: PhantomData<fn(Req)>,
    }
}

impl<E, F, Req> Future for LoggedCall<'_, E, F, Req>
where
    E: Endpoint<Req>,
    F: Future<Output = Result<E::Response, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut std::task::Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let result = ready!(this.call.poll(task));
        Poll::Ready(this.endpoint.log(this.method, *this.start, result))
    }
}

//! Retries: attempts under one deadline, per-attempt timeouts, backoff with full jitter, a
//! callback that decides, and a budget that keeps retries from multiplying an outage (go-kit's
//! `lb.Retry` and `lb.RetryWithCallback`, with Finagle's budget).
//!
//! Only failures worth trying again are retried: kit-core's [`ErrorKind::is_retryable`]
//! (timeout, overloaded, unavailable). Business errors are answers, never retried, and neither
//! are errors the caller caused. Put [`Retry`] above a `balance::Balanced`
//! endpoint: each retry then goes to an endpoint this call has not tried yet, where there is
//! one.
//!
//! [`ErrorKind::is_retryable`]: kit_core::ErrorKind::is_retryable

mod backoff;
mod budget;

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use kit_core::deadline::{Deadline, DeadlineEndpoint};
use kit_core::{Context, Endpoint, Error, Middleware};

pub use backoff::Backoff;
pub use budget::Budget;

/// What the [`Retry::on_error`] callback decides after a failed attempt.
#[derive(Clone, Debug)]
pub enum Decision {
    /// Try again (if attempts, deadline and budget allow).
    Retry,
    /// Stop, and return the error.
    Stop,
    /// Stop, and return this error instead (go-kit's replacement error).
    StopWith(Error),
}

type Callback = Arc<dyn Fn(u32, &Error) -> Decision + Send + Sync>;

/// The retry middleware: wraps an endpoint in a [`RetryEndpoint`].
///
/// Defaults, set here and nowhere else: 3 attempts in all; no overall timeout beyond the
/// caller's deadline; no per-attempt timeout; [`Backoff::default`] (10 ms doubling, at most
/// 1 s, full jitter); a [`Budget::default`] of its own (20% of recent calls plus 10 per
/// second). The overall deadline is the earlier of the caller's and [`timeout`](Retry::timeout)
/// from the call's start; no attempt and no backoff runs past it, and a backoff that would end
/// past it is not started.
///
/// An attempt refused before it was sent (an open breaker, a rate limit: its error's source is
/// [`NotSent`](crate::NotSent)) is retried without charging the budget, which exists to spare
/// the callee; it still counts as an attempt.
///
/// When a call made more than one attempt and failed, its error has the last attempt's kind and
/// message, and its [`source`](std::error::Error::source) is an [`Attempts`] holding every
/// attempt's error and why the retries stopped.
///
/// ```
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::sync::Arc;
/// use kit_client::retry::Retry;
/// use kit_core::{endpoint_fn, Context, Endpoint, Error, Middleware};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let calls = Arc::new(AtomicU32::new(0));
/// let seen = calls.clone();
/// // Fails twice, then answers.
/// let flaky = endpoint_fn(move |_cx, ()| {
///     let n = seen.fetch_add(1, Ordering::SeqCst);
///     async move { if n < 2 { Err(Error::unavailable("try later")) } else { Ok(n) } }
/// });
/// let ep = Retry::new().max_attempts(3).wrap(flaky);
/// assert_eq!(ep.call(Context::new(), ()).await.unwrap(), 2);
/// assert_eq!(calls.load(Ordering::SeqCst), 3);
/// # }
/// ```
#[derive(Clone)]
pub struct Retry {
    max_attempts: u32,
    timeout: Option<Duration>,
    attempt_timeout: Option<Duration>,
    backoff: Backoff,
    budget: Budget,
    on_error: Option<Callback>,
}

impl Retry {
    /// Retries with the defaults above.
    pub fn new() -> Self {
        Retry {
            max_attempts: 3,
            timeout: None,
            attempt_timeout: None,
            backoff: Backoff::default(),
            budget: Budget::default(),
            on_error: None,
        }
    }

    /// At most `n` attempts in all, the first included (at least 1).
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// All attempts and the waits between them end within `timeout` of the call's start (and
    /// never past the caller's deadline).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Each attempt ends within `timeout` (and never past the overall deadline).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = Some(timeout);
        self
    }

    /// The waits between attempts.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Shares `budget` (clones of a budget are one budget).
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }

    /// Asks `f(attempt, &error)` after each failed attempt that could be retried (attempt 1 is
    /// the first): go on, stop, or stop with another error (go-kit's `RetryWithCallback`).
    /// Errors that are not retryable stop without asking. A replacement error gets the
    /// [`Attempts`] as its source unless it has a source of its own.
    pub fn on_error(mut self, f: impl Fn(u32, &Error) -> Decision + Send + Sync + 'static) -> Self {
        self.on_error = Some(Arc::new(f));
        self
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry::new()
    }
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retry")
            .field("max_attempts", &self.max_attempts)
            .field("timeout", &self.timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("backoff", &self.backoff)
            .field("budget", &self.budget)
            .field("on_error", &self.on_error.is_some())
            .finish()
    }
}

impl<E> Middleware<E> for Retry {
    type Endpoint = RetryEndpoint<E>;

    fn wrap(&self, inner: E) -> RetryEndpoint<E> {
        RetryEndpoint {
            inner: Deadline::new().wrap(inner),
            retry: self.clone(),
        }
    }
}

/// An endpoint whose failed calls are retried; made by [`Retry`].
#[derive(Clone, Debug)]
pub struct RetryEndpoint<E> {
    // The deadline middleware ends each attempt at its (tightened) deadline even if the
    // endpoint below does not watch its context.
    inner: DeadlineEndpoint<E>,
    retry: Retry,
}

/// Why a call's retries stopped; in [`Attempts`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stopped {
    /// The last error is not worth trying again (not [`retryable`](kit_core::Error::is_retryable)).
    NotRetryable,
    /// Every attempt allowed was made.
    MaxAttempts,
    /// The deadline passed, or the next wait would pass it, or the caller cancelled.
    Deadline,
    /// The retry budget was spent.
    Budget,
    /// The [`Retry::on_error`] callback said stop.
    Callback,
}

/// Every attempt's error, oldest first, and why the retries stopped: the source of the error a
/// retried call fails with.
#[derive(Clone, Debug)]
pub struct Attempts {
    /// The attempts' errors, oldest first.
    pub errors: Vec<Error>,
    /// Why there was no further attempt.
    pub stopped: Stopped,
}

impl fmt::Display for Attempts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} attempts ({:?}):", self.errors.len(), self.stopped)?;
        for (i, err) in self.errors.iter().enumerate() {
            write!(f, " [{}] {}: {}", i + 1, err.kind(), err)?;
        }
        Ok(())
    }
}

impl std::error::Error for Attempts {}

impl<E, Req> Endpoint<Req> for RetryEndpoint<E>
where
    E: Endpoint<Req>,
    Req: Clone + Send + 'static,
{
    type Response = E::Response;

    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl Future<Output = Result<E::Response, Error>> + Send {
        // Time holds still within each poll: the layers below share one clock read.
        crate::clock::held(async move {
            let retry = &self.retry;
            retry.budget.deposit();
            let cx = match retry.timeout {
                Some(timeout) => cx.with_timeout(timeout),
                None => cx,
            };
            // The balancers below read which endpoints this call has tried.
            #[cfg(feature = "balance")]
            let cx = cx.with_value(crate::balance::Tried::<Req, E::Response>::new());
            let mut req = Some(req);
            let mut errors = Vec::new();
            let mut replacement = None;
            let mut attempt = 0;
            let stopped = loop {
                attempt += 1;
                let last = attempt >= retry.max_attempts;
                let this = match (last, &mut req) {
                    (false, Some(req)) => req.clone(),
                    (_, req) => match req.take() {
                        Some(req) => req,
                        None => break Stopped::MaxAttempts,
                    },
                };
                let attempt_cx = match retry.attempt_timeout {
                    Some(timeout) => cx.clone().with_timeout(timeout),
                    None => cx.clone(),
                };
                let err = match self.inner.call(attempt_cx, this).await {
                    Ok(response) => return Ok(response),
                    Err(err) => err,
                };
                let retryable = err.is_retryable();
                // Refused before sending: retrying costs the callee nothing, so no budget.
                let not_sent = crate::NotSent::is_source_of(&err);
                errors.push(err);
                if !retryable {
                    break Stopped::NotRetryable;
                }
                if last {
                    break Stopped::MaxAttempts;
                }
                if let Some(on_error) = &retry.on_error {
                    match on_error(attempt, &errors[errors.len() - 1]) {
                        Decision::Retry => {}
                        Decision::Stop => break Stopped::Callback,
                        Decision::StopWith(err) => {
                            replacement = Some(err);
                            break Stopped::Callback;
                        }
                    }
                }
                let delay = retry.backoff.delay(attempt);
                if cx.err().is_some() || cx.remaining().is_some_and(|left| delay >= left) {
                    break Stopped::Deadline;
                }
                if !not_sent && !retry.budget.withdraw() {
                    break Stopped::Budget;
                }
                if !wait(&cx, delay).await {
                    break Stopped::Deadline;
                }
            };
            Err(match replacement {
                Some(err) if std::error::Error::source(&err).is_some() => err,
                Some(err) => err.with_source(Attempts { errors, stopped }),
                None => failed(errors, stopped),
            })
        })
    }

    fn failed(&self, response: &E::Response) -> Option<Error> {
        self.inner.failed(response)
    }
}

/// Sleeps `delay`; `false` if the context ended first.
async fn wait(cx: &Context, delay: Duration) -> bool {
    if delay.is_zero() {
        return cx.err().is_none();
    }
    let mut sleep = pin!(tokio::time::sleep(delay));
    let mut done = pin!(cx.done());
    poll_fn(|task| {
        if sleep.as_mut().poll(task).is_ready() {
            return Poll::Ready(true);
        }
        done.as_mut().poll(task).map(|_| false)
    })
    .await
}

/// The error of a call whose attempts all failed: the last error alone after one attempt;
/// after several, the last one's kind, message and statuses with every attempt as the source.
fn failed(mut errors: Vec<Error>, stopped: Stopped) -> Error {
    let Some(last) = errors.last().cloned() else {
        return Error::internal("no attempt was made");
    };
    if errors.len() == 1 {
        return errors.remove(0);
    }
    Error::new(last.kind(), last.message().to_owned())
        .with_http_status(last.http_status())
        .with_grpc_code(last.grpc_code())
        .with_source(Attempts { errors, stopped })
}

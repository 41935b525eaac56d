//! Enforces the context's deadline and cancellation on any endpoint.
//!
//! Endpoints are asked to honour their [`Context`], but one that awaits a slow database without
//! looking at the context would keep its caller waiting past the deadline. [`Deadline`] makes
//! the guarantee hold for every endpoint: when the deadline passes or the context is cancelled,
//! the call ends at once with [`ErrorKind::Timeout`] ("deadline exceeded") or
//! [`ErrorKind::Cancelled`] ("request cancelled"), and the inner call's future is dropped: work
//! done inside that future stops at its next await point, while tasks it spawned and blocking
//! work it started run on. A call whose context is already done does not reach the inner
//! endpoint at all. A per-call timeout ([`Deadline::with_timeout`]) starts when `call` is made.
//!
//! [`ErrorKind::Timeout`]: crate::ErrorKind::Timeout
//! [`ErrorKind::Cancelled`]: crate::ErrorKind::Cancelled

use std::future::Future;
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use crate::{BoxFuture, Context, Endpoint, Error, Middleware};

/// The deadline middleware: wraps an endpoint in a [`DeadlineEndpoint`].
///
/// [`Deadline::new`] enforces the caller's deadline; [`Deadline::with_timeout`] also gives each
/// call at most a fixed time (the earlier of the two wins, and the inner endpoint sees the
/// tightened deadline in its context).
#[derive(Clone, Copy, Debug, Default)]
pub struct Deadline {
    timeout: Option<Duration>,
}

impl Deadline {
    /// Enforces the deadline and cancellation the caller's context carries.
    pub fn new() -> Self {
        Deadline { timeout: None }
    }

    /// Also limits every call to `timeout` from its start.
    pub fn with_timeout(timeout: Duration) -> Self {
        Deadline {
            timeout: Some(timeout),
        }
    }
}

impl<E> Middleware<E> for Deadline {
    type Endpoint = DeadlineEndpoint<E>;

    fn wrap(&self, inner: E) -> DeadlineEndpoint<E> {
        DeadlineEndpoint {
            inner,
            timeout: self.timeout,
        }
    }
}

/// An endpoint whose calls end when their context's deadline passes or it is cancelled.
#[derive(Clone, Debug)]
pub struct DeadlineEndpoint<E> {
    inner: E,
    timeout: Option<Duration>,
}

impl<E, Req> Endpoint<Req> for DeadlineEndpoint<E>
where
    E: Endpoint<Req>,
    Req: Send,
{
    type Response = E::Response;

    fn call(
        &self,
        cx: Context,
        req: Req,
    ) -> impl Future<Output = Result<E::Response, Error>> + Send {
        // The clock is read once for the timeout and the check below (a read costs as much as
        // the rest of this layer's work on a call answered at once).
        let (cx, now) = match self.timeout {
            Some(timeout) => {
                let now = Instant::now();
                (cx.with_timeout_from(now, timeout), Some(now))
            }
            None => (cx, None),
        };
        async move {
            // Most contexts inside a service carry a deadline, but one that can never end
            // needs no race.
            if !cx.can_end() {
                return self.inner.call(cx, req).await;
            }
            if let Some(err) = cx.err_by(|| now.unwrap_or_else(Instant::now)) {
                return Err(err);
            }
            let watch = cx.clone();
            let mut call = pin!(self.inner.call(cx, req));
            // The watch on the context (a timer and a cancellation listener, some 260 bytes) is
            // made on the heap once the call has to wait: a call answered at once, the common
            // case in a service, neither allocates it nor carries its room in the future every
            // layer above moves and boxes.
            let mut done: Option<BoxFuture<'static, Error>> = None;
            std::future::poll_fn(|task| {
                // The call first: an answer that is ready wins over a deadline that is too.
                if let Poll::Ready(result) = call.as_mut().poll(task) {
                    return Poll::Ready(result);
                }
                let done = done.get_or_insert_with(|| {
                    let cx = watch.clone();
                    Box::pin(async move { cx.done().await })
                });
                done.as_mut().poll(task).map(Err)
            })
            .await
        }
    }

    fn failed(&self, response: &E::Response) -> Option<Error> {
        self.inner.failed(response)
    }
}

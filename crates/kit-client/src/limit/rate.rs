//! Token-bucket rate limits on governor, with tokio's clock.

use std::fmt;
use std::future::{Future, poll_fn};
use std::num::NonZeroU32;
use std::ops::Add;
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use governor::clock::{Clock, Reference};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use kit_core::{Context, Endpoint, Error, Middleware};
use tokio::time::Instant;

/// tokio's clock for governor, so that a paused test clock pauses the buckets too.
#[derive(Clone, Debug)]
struct TokioClock {
    base: Instant,
}

/// Nanoseconds since the clock's base.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Tick(u64);

impl Add<Nanos> for Tick {
    type Output = Tick;

    fn add(self, other: Nanos) -> Tick {
        Tick(self.0.saturating_add(other.as_u64()))
    }
}

impl Reference for Tick {
    fn duration_since(&self, earlier: Self) -> Nanos {
        Nanos::from(self.0.saturating_sub(earlier.0))
    }

    fn saturating_sub(&self, duration: Nanos) -> Self {
        Tick(self.0.saturating_sub(duration.as_u64()))
    }
}

impl Clock for TokioClock {
    type Instant = Tick;

    fn now(&self) -> Tick {
        let since = crate::clock::now().saturating_duration_since(self.base);
        Tick(since.as_nanos().try_into().unwrap_or(u64::MAX))
    }
}

const NOT_SENT: crate::NotSent = crate::NotSent { by: "rate_limit" };

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Tick>>;

/// The rate-limit middleware: wraps an endpoint in a [`RateLimitEndpoint`].
///
/// One token bucket per `RateLimit` value: every endpoint it wraps, and every clone, draws on
/// it. The bucket holds `burst` tokens (by default as many as the rate per second) and gains
/// one every 1/rate seconds.
///
/// ```
/// use std::num::NonZeroU32;
/// use kit_client::limit::RateLimit;
/// use kit_core::{endpoint_fn, Context, Endpoint, Error, ErrorKind, Middleware};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let two = NonZeroU32::new(2).unwrap();
/// let ep = RateLimit::erroring(two).wrap(endpoint_fn(|_cx, ()| async { Ok::<_, Error>(()) }));
/// assert!(ep.call(Context::new(), ()).await.is_ok());
/// assert!(ep.call(Context::new(), ()).await.is_ok());
/// let err = ep.call(Context::new(), ()).await.unwrap_err();
/// assert_eq!((err.kind(), err.message()), (ErrorKind::Overloaded, "rate limit exceeded"));
/// # }
/// ```
#[derive(Clone)]
pub struct RateLimit {
    limiter: Arc<Limiter>,
    quota: Quota,
    clock: TokioClock,
    delaying: bool,
}

impl RateLimit {
    /// Refuses calls over `per_second` (with a burst of as many) at once, as overloaded.
    pub fn erroring(per_second: NonZeroU32) -> Self {
        RateLimit::with(Quota::per_second(per_second), false)
    }

    /// Makes calls over `per_second` (with a burst of as many) wait for their token; a call
    /// whose wait would pass its deadline is refused at once, as overloaded.
    pub fn delaying(per_second: NonZeroU32) -> Self {
        RateLimit::with(Quota::per_second(per_second), true)
    }

    /// Lets up to `burst` calls through at once when the bucket is full.
    pub fn burst(self, burst: NonZeroU32) -> Self {
        let quota = self.quota.allow_burst(burst);
        RateLimit::with(quota, self.delaying)
    }

    fn with(quota: Quota, delaying: bool) -> Self {
        let clock = TokioClock {
            base: Instant::now(),
        };
        RateLimit {
            limiter: Arc::new(RateLimiter::direct_with_clock(quota, clock.clone())),
            quota,
            clock,
            delaying,
        }
    }

    /// A token now, or how long until one.
    fn take(&self) -> Result<(), Duration> {
        self.limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

impl fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quota = self.quota;
        f.debug_struct("RateLimit")
            .field("every", &quota.replenish_interval())
            .field("burst", &quota.burst_size())
            .field("delaying", &self.delaying)
            .finish()
    }
}

/// The error of a call refused by a rate limit that does not delay.
fn refused() -> Error {
    Error::overloaded("rate limit exceeded").with_source(NOT_SENT)
}

impl RateLimit {
    /// After a `take` that answered `wait`: refuses, or waits (no longer than `cx` allows) and
    /// takes a token.
    async fn wait_for_token(&self, cx: &Context, mut wait: Duration) -> Result<(), Error> {
        loop {
            if !self.delaying {
                return Err(refused());
            }
            if cx.remaining().is_some_and(|left| wait > left) {
                return Err(Error::overloaded(format!(
                    "rate limit exceeded: the wait of {wait:?} would pass the deadline"
                ))
                .with_source(NOT_SENT));
            }
            // Another caller may take the token first: wait, then try again.
            let mut sleep = pin!(tokio::time::sleep(wait));
            let mut done = pin!(cx.done());
            let ended = poll_fn(|task| {
                if sleep.as_mut().poll(task).is_ready() {
                    return Poll::Ready(None);
                }
                done.as_mut().poll(task).map(Some)
            })
            .await;
            if let Some(err) = ended {
                return Err(err);
            }
            match self.take() {
                Ok(()) => return Ok(()),
                Err(next) => wait = next,
            }
        }
    }
}

impl<E> Middleware<E> for RateLimit {
    type Endpoint = RateLimitEndpoint<E>;

    fn wrap(&self, inner: E) -> RateLimitEndpoint<E> {
        RateLimitEndpoint {
            inner,
            limit: self.clone(),
        }
    }
}

/// A rate-limited endpoint; made by [`RateLimit`].
#[derive(Clone, Debug)]
pub struct RateLimitEndpoint<E> {
    inner: E,
    limit: RateLimit,
}

impl<E, Req> Endpoint<Req> for RateLimitEndpoint<E>
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
        // Time holds still within each poll: the layers below share one clock read.
        crate::clock::held(async move {
            if let Err(wait) = self.limit.take() {
                if !self.limit.delaying {
                    // Refused at once, without allocating: refusals come in floods.
                    return Err(refused());
                }
                // Waiting (a timer and a watch on the context) is on the heap: a call that
                // finds a token, the common case, carries none of it in its future.
                Box::pin(self.limit.wait_for_token(&cx, wait)).await?;
            }
            self.inner.call(cx, req).await
        })
    }

    fn failed(&self, response: &E::Response) -> Option<Error> {
        self.inner.failed(response)
    }
}

//! An adaptive concurrency limit: additive increase, multiplicative decrease.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use kit_core::{Context, Endpoint, Error, ErrorKind, Middleware, Outcome};

/// The adaptive concurrency-limit middleware (AIMD, as Netflix's concurrency-limits' `AIMDLimit`):
/// wraps an endpoint in an [`AdaptiveLimitEndpoint`].
///
/// Calls over the current limit are refused at once as overloaded. The limit grows by one for
/// each call that succeeds while at least half the limit is in use (a limit nobody reaches
/// has not earned a rise), and is multiplied by `backoff` for each call that the callee
/// drops: a timeout, or an overloaded answer. It stays between `min` and `max`. So a caller
/// finds out how much a callee takes without being told, and backs off as soon as it struggles.
///
/// Defaults, set here and nowhere else: start at 20, between 1 and 1000, back off to 0.9×.
/// One limit per `AdaptiveLimit` value, shared by what it wraps and by clones.
///
/// ```
/// use kit_client::limit::AdaptiveLimit;
/// use kit_core::{endpoint_fn, Context, Endpoint, Error, Middleware};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let limit = AdaptiveLimit::new().initial(10);
/// let busy = limit.wrap(endpoint_fn(|_cx, ()| async { Err::<(), _>(Error::overloaded("queue full")) }));
/// busy.call(Context::new(), ()).await.unwrap_err();
/// assert_eq!(limit.limit(), 9);
/// # }
/// ```
#[derive(Clone)]
pub struct AdaptiveLimit {
    shared: Arc<Shared>,
}

struct Shared {
    limit: Mutex<f64>,
    in_flight: AtomicUsize,
    min: f64,
    max: f64,
    backoff: f64,
}

impl AdaptiveLimit {
    /// A limit with the defaults above.
    pub fn new() -> Self {
        AdaptiveLimit::build(20.0, 1.0, 1000.0, 0.9)
    }

    fn build(initial: f64, min: f64, max: f64, backoff: f64) -> Self {
        AdaptiveLimit {
            shared: Arc::new(Shared {
                limit: Mutex::new(initial.clamp(min, max)),
                in_flight: AtomicUsize::new(0),
                min,
                max,
                backoff,
            }),
        }
    }

    fn edit(self, f: impl FnOnce(&mut (f64, f64, f64, f64))) -> Self {
        let s = &self.shared;
        let mut v = (s.limit(), s.min, s.max, s.backoff);
        f(&mut v);
        AdaptiveLimit::build(v.0, v.1, v.2, v.3)
    }

    /// The limit to start from.
    pub fn initial(self, n: usize) -> Self {
        self.edit(|v| v.0 = n as f64)
    }

    /// The limit never goes below `min` (at least 1) or above `max` (at least `min`).
    pub fn bounds(self, min: usize, max: usize) -> Self {
        let min = min.max(1) as f64;
        self.edit(|v| {
            v.1 = min;
            v.2 = (max as f64).max(min);
        })
    }

    /// What the limit is multiplied by when a call is dropped (between 0.1 and 1).
    pub fn backoff(self, ratio: f64) -> Self {
        let ratio = if ratio.is_nan() {
            0.9
        } else {
            ratio.clamp(0.1, 1.0)
        };
        self.edit(|v| v.3 = ratio)
    }

    /// The current limit, rounded down.
    pub fn limit(&self) -> usize {
        self.shared.limit() as usize
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn limit(&self) -> f64 {
        *self.limit.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update(&self, dropped: bool, in_flight: usize) {
        let mut limit = self.limit.lock().unwrap_or_else(PoisonError::into_inner);
        if dropped {
            *limit = (*limit * self.backoff).max(self.min);
        } else if (in_flight * 2) as f64 >= *limit {
            *limit = (*limit + 1.0).min(self.max);
        }
    }
}

impl Default for AdaptiveLimit {
    fn default() -> Self {
        AdaptiveLimit::new()
    }
}

impl fmt::Debug for AdaptiveLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimit")
            .field("limit", &self.shared.limit())
            .field("in_flight", &self.in_flight())
            .field("min", &self.shared.min)
            .field("max", &self.shared.max)
            .field("backoff", &self.shared.backoff)
            .finish()
    }
}

impl<E> Middleware<E> for AdaptiveLimit {
    type Endpoint = AdaptiveLimitEndpoint<E>;

    fn wrap(&self, inner: E) -> AdaptiveLimitEndpoint<E> {
        AdaptiveLimitEndpoint {
            inner,
            limit: self.clone(),
        }
    }
}

/// An endpoint under an adaptive concurrency limit; made by [`AdaptiveLimit`].
#[derive(Clone, Debug)]
pub struct AdaptiveLimitEndpoint<E> {
    inner: E,
    limit: AdaptiveLimit,
}

/// One call's place in flight, given back however the call ends.
struct Place<'a>(&'a AtomicUsize);

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl<E, Req> Endpoint<Req> for AdaptiveLimitEndpoint<E>
where
    E: Endpoint<Req>,
    Req: Send,
{
    type Response = E::Response;

    async fn call(&self, cx: Context, req: Req) -> Result<E::Response, Error> {
        let shared = &self.limit.shared;
        let limit = shared.limit() as usize;
        let in_flight = shared.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        let _place = Place(&shared.in_flight);
        if in_flight > limit {
            return Err(
                Error::overloaded(format!("adaptive limit: {limit} calls in flight")).with_source(
                    crate::NotSent {
                        by: "adaptive_limit",
                    },
                ),
            );
        }
        let result = self.inner.call(cx, req).await;
        let dropped = Outcome::of_call(&self.inner, &result) == Outcome::Failure
            && Outcome::error_of(&self.inner, &result)
                .is_some_and(|e| matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Overloaded));
        shared.update(dropped, in_flight);
        result
    }

    fn failed(&self, response: &E::Response) -> Option<Error> {
        self.inner.failed(response)
    }
}

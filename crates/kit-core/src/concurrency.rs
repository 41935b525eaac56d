//! Caps the calls of an endpoint that are in flight at once; the rest are refused at once.
//!
//! One middleware for both sides: kit-server puts it innermost in its stack so that a flood
//! of calls is answered "overloaded" (HTTP 429, gRPC `RESOURCE_EXHAUSTED`) instead of piling
//! up behind a slow backend; kit-client puts it in front of a dependency that must not see
//! more than so many calls from this process. A call over the limit is refused rather than
//! queued, so that a deadline above it does not spend itself waiting and the caller (or its
//! retry, on another instance) hears at once. The limit is an atomic counter: no lock, no
//! allocation, and no runtime needed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Context, Endpoint, Error, Middleware};

/// The concurrency-limit middleware: wraps an endpoint in a [`ConcurrencyLimitEndpoint`].
///
/// Every endpoint one `ConcurrencyLimit` wraps, and every clone of it, share one count: wrap
/// several methods with one value to cap them together, or make one value per method.
///
/// ```
/// use kit_core::concurrency::ConcurrencyLimit;
/// use kit_core::{endpoint_fn, Context, Endpoint, Error, ErrorKind, Middleware};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (entered, release) = (tokio::sync::Notify::new(), tokio::sync::Notify::new());
/// let (entered, release) = (std::sync::Arc::new(entered), std::sync::Arc::new(release));
/// let (e, r) = (entered.clone(), release.clone());
/// let slow = ConcurrencyLimit::new(1).wrap(endpoint_fn(move |_cx, ()| {
///     let (e, r) = (e.clone(), r.clone());
///     async move {
///         e.notify_one();
///         r.notified().await;
///         Ok::<_, Error>(())
///     }
/// }));
/// let first = slow.call(Context::new(), ());
/// let second = async {
///     entered.notified().await;
///     let refused = slow.call(Context::new(), ()).await.unwrap_err();
///     release.notify_one();
///     refused
/// };
/// let (first, refused) = tokio::join!(first, second);
/// assert!(first.is_ok());
/// assert_eq!(refused.kind(), ErrorKind::Overloaded);
/// assert_eq!(refused.message(), "more than 1 calls in flight");
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ConcurrencyLimit {
    limit: usize,
    in_flight: Arc<AtomicUsize>,
}

impl ConcurrencyLimit {
    /// At most `limit` calls in flight at once. A limit of 0 refuses every call.
    pub fn new(limit: usize) -> Self {
        ConcurrencyLimit {
            limit,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A permit for one call, or `None` when `limit` calls hold one.
    fn acquire(&self) -> Option<Permit<'_>> {
        self.in_flight
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(&self.in_flight))
    }
}

/// One call's place under the limit, given back when the call ends or is dropped.
struct Permit<'a>(&'a AtomicUsize);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl<E> Middleware<E> for ConcurrencyLimit {
    type Endpoint = ConcurrencyLimitEndpoint<E>;

    fn wrap(&self, inner: E) -> ConcurrencyLimitEndpoint<E> {
        ConcurrencyLimitEndpoint {
            inner,
            limit: self.clone(),
        }
    }
}

/// An endpoint with at most so many calls in flight; made by [`ConcurrencyLimit`].
#[derive(Clone, Debug)]
pub struct ConcurrencyLimitEndpoint<E> {
    inner: E,
    limit: ConcurrencyLimit,
}

impl<E, Req> Endpoint<Req> for ConcurrencyLimitEndpoint<E>
where
    E: Endpoint<Req>,
    Req: Send,
{
    type Response = E::Response;

    async fn call(&self, cx: Context, req: Req) -> Result<E::Response, Error> {
        let Some(_permit) = self.limit.acquire() else {
            return Err(Error::overloaded(format!(
                "more than {} calls in flight",
                self.limit.limit
            )));
        };
        self.inner.call(cx, req).await
    }

    fn failed(&self, response: &E::Response) -> Option<Error> {
        self.inner.failed(response)
    }
}

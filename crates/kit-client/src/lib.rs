//! kit-client: the caller's side of kit-rs. Calling another service that runs as several
//! instances, some of them slow or failing, with go-kit's `sd/lb`, `circuitbreaker` and
//! `ratelimit` as kit-core middleware and endpoints.
//!
//! Every piece is an [`Endpoint`](kit_core::Endpoint) or a
//! [`Middleware`](kit_core::Middleware), so it works over any transport's client endpoint, and
//! every piece reads a call's outcome through kit-core's one classification,
//! [`Outcome::of_call`](kit_core::Outcome::of_call): business errors, also those carried in a
//! reply, are answers, not faults, and never trip a breaker or cause a retry.
//!
//! | module | feature | what it is |
//! |---|---|---|
//! | `balance` | `balance` | round robin, random and power-of-two-choices (peak EWMA) over a changing `Endpointer` |
//! | `retry` | `retry` | attempts under one deadline, per-attempt timeouts, backoff with full jitter, a retry budget |
//! | `breaker` | `breaker` | a circuit breaker per endpoint: consecutive failures or a failure ratio over a window |
//! | `limit` | `limit` | erroring and delaying token-bucket rate limits (governor), an adaptive (AIMD) concurrency limit |
//!
//! kit-core's [`ConcurrencyLimit`](kit_core::concurrency::ConcurrencyLimit) is the fixed
//! concurrency limit, the same middleware kit-server uses. No feature is on by default.
//!
//! # The caller's stack
//!
//! ```text
//!   calling code ─► Retry ─► Balanced(P2c) ─► per instance: Breaker ─► transport client
//! ```
//!
//! The retry sits above the balancer so that a retry goes to another instance; each instance
//! has its own breaker, so one bad instance is cut off, not the service.
//!
//! # Time
//!
//! Every layer reads tokio's clock, so a paused test clock pauses budgets, windows, buckets
//! and latency estimates alike. While a kit-client layer polls a call, time holds still on
//! that thread: the layers under it share one clock read per poll rather than taking one each.
//! Work done synchronously within one poll therefore takes no time as they see it; a remote
//! call, which awaits its reply, is measured from before its request to after its reply.
//!
//! ```
//! # #[cfg(all(feature = "balance", feature = "retry", feature = "breaker"))]
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use kit_client::balance::{Balanced, P2c};
//! use kit_client::breaker::Breaker;
//! use kit_client::retry::Retry;
//! use kit_core::{endpoint_fn, BoxEndpoint, Context, Endpoint, Error, FixedEndpointer, Middleware};
//!
//! // Three instances of a service; the second is down.
//! let instance = |up: bool| {
//!     let client = endpoint_fn(move |_cx, n: u32| async move {
//!         if up { Ok(n * 2) } else { Err(Error::unavailable("connection refused")) }
//!     });
//!     BoxEndpoint::new(Breaker::new().wrap(client))
//! };
//! let instances = FixedEndpointer::new(vec![instance(true), instance(false), instance(true)]);
//!
//! let double = Retry::new().max_attempts(3).wrap(Balanced::new(P2c::new(instances)));
//! for n in 0..100 {
//!     assert_eq!(double.call(Context::new(), n).await.unwrap(), n * 2);
//! }
//! # }
//! # #[cfg(not(all(feature = "balance", feature = "retry", feature = "breaker")))]
//! # fn main() {}
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "balance")]
#[cfg_attr(docsrs, doc(cfg(feature = "balance")))]
pub mod balance;
#[cfg(feature = "breaker")]
#[cfg_attr(docsrs, doc(cfg(feature = "breaker")))]
pub mod breaker;
#[cfg(any(
    feature = "balance",
    feature = "breaker",
    feature = "limit",
    feature = "retry"
))]
mod clock;
#[cfg(feature = "limit")]
#[cfg_attr(docsrs, doc(cfg(feature = "limit")))]
pub mod limit;
#[cfg(feature = "retry")]
#[cfg_attr(docsrs, doc(cfg(feature = "retry")))]
pub mod retry;
#[cfg(any(feature = "breaker", feature = "retry"))]
mod window;

/// The source of an error with which a kit-client middleware refused a call before sending it
/// (an open breaker, a rate limit, an adaptive limit's shed): the callee saw nothing.
///
/// `retry::Retry` (feature `retry`) retries such a call without charging its budget, which
/// exists to spare callees extra load; the retry still counts as an attempt, and goes to
/// another endpoint where the balancer has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotSent {
    /// Which middleware refused: `breaker`, `rate_limit` or `adaptive_limit`.
    pub by: &'static str,
}

impl std::fmt::Display for NotSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused by the {} before sending", self.by)
    }
}

impl std::error::Error for NotSent {}

impl NotSent {
    /// Whether `err` was refused before sending (its source is a `NotSent`).
    pub fn is_source_of(err: &kit_core::Error) -> bool {
        std::error::Error::source(err).is_some_and(|source| source.is::<NotSent>())
    }
}

// The README's example is compiled and run with the doc tests.
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "full"))]
pub struct ReadmeDoctests;

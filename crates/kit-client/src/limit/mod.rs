//! Limits on the calls this process makes: token-bucket rate limits (go-kit's `ratelimit`) and
//! an adaptive concurrency limit (Netflix's concurrency-limits, AIMD).
//!
//! - [`RateLimit::erroring`]: a call over the rate is refused at once as overloaded (go-kit's
//!   `NewErroringLimiter`).
//! - [`RateLimit::delaying`]: a call over the rate waits for its token, unless the wait would
//!   pass the call's deadline, in which case it is refused at once (go-kit's
//!   `NewDelayingLimiter`, which waits and then fails).
//! - [`AdaptiveLimit`]: a concurrency limit that finds itself: it grows while calls succeed
//!   with the limit in use and shrinks when calls time out or come back overloaded, and sheds
//!   calls over it as overloaded.
//!
//! The fixed concurrency limit is kit-core's
//! [`ConcurrencyLimit`](kit_core::concurrency::ConcurrencyLimit), the one kit-server uses too.
//! The token buckets are governor's GCRA (a well-kept crate made for exactly this), driven by
//! tokio's clock so that tests can pause time.

mod adaptive;
mod rate;

pub use adaptive::{AdaptiveLimit, AdaptiveLimitEndpoint};
pub use rate::{RateLimit, RateLimitEndpoint};

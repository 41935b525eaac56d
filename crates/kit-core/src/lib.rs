//! kit-core: the small set of types every kit-rs crate is built on.
//!
//! kit-rs is a toolkit for RPC microservices in the manner of go-kit: business logic is plain
//! Rust behind an [`Endpoint`], and everything else (transports, logging, metrics, tracing,
//! limits, discovery, balancing) is composed around endpoints as [`Middleware`] or as code that
//! calls them. This crate holds only the shared vocabulary:
//!
//! | item | what it is |
//! |---|---|
//! | [`Endpoint`] | one RPC method: `Context` + request → response or [`Error`], async, `&self` |
//! | [`BoxEndpoint`] | any endpoint behind one cloneable type |
//! | [`Middleware`], [`Chain`], [`Named`] | endpoint → endpoint; a chain whose first middleware is the outermost; `Option<M>` as a middleware; the endpoint's name in the context |
//! | [`Context`] | the request's deadline, cancellation and typed values, passed explicitly |
//! | [`Error`], [`ErrorKind`], [`Outcome`], [`Failer`], [`Failing`] | one classified error; the one classification of a call's outcome, business errors carried in replies included |
//! | [`deadline`] | the middleware that enforces a context's deadline and cancellation |
//! | [`concurrency`] | the middleware that refuses calls over a number in flight, as overloaded |
//! | [`Endpointer`], [`EndpointSet`] | a set of endpoints that changes over time, for discovery and balancing |
//! | `tower` (feature `tower`, on by default) | endpoints as tower services and back; middleware as layers and back |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use kit_core::deadline::Deadline;
//! use kit_core::{endpoint_fn, Chain, Context, Endpoint, Error, ErrorKind, Middleware};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // The business logic: a plain async function of the request.
//! let sum = endpoint_fn(|_cx, (a, b): (i64, i64)| async move {
//!     if a == 0 && b == 0 {
//!         return Err(Error::business("can't sum two zeroes"));
//!     }
//!     Ok(a + b)
//! });
//!
//! // Behaviour around it, outermost first.
//! let sum = Chain::new()
//!     .with(Deadline::with_timeout(Duration::from_secs(1)))
//!     .wrap(sum);
//!
//! assert_eq!(sum.call(Context::new(), (1, 2)).await.unwrap(), 3);
//!
//! let err = sum.call(Context::new(), (0, 0)).await.unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Business);
//! assert_eq!(err.to_string(), "can't sum two zeroes");
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod boxed;
pub mod concurrency;
mod context;
pub mod deadline;
mod endpoint;
mod endpointer;
mod error;
mod middleware;
#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use boxed::{BoxEndpoint, BoxFuture};
pub use context::Context;
pub use endpoint::{Endpoint, EndpointFn, Failing, endpoint_fn};
pub use endpointer::{EndpointSet, Endpointer, Endpoints, FixedEndpointer};
pub use error::{BoxError, Error, ErrorKind, Failer, Outcome};
pub use middleware::{Chain, Identity, Middleware, Named, NamedEndpoint, OptionalEndpoint, Stack};
pub use tokio_util::sync::CancellationToken;

// The README's example is compiled and run with the doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

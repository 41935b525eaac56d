//! kit-server: running a service: a run group with signals and a graceful drain, liveness and
//! readiness over HTTP and gRPC, a debug listener, and the standard server-side middleware
//! stack.
//!
//! go-kit leaves `main` to each service (oklog/run, a debug mux, hand-stacked middleware); this
//! crate is that `main` as parts:
//!
//! - [`Group`]: tasks (listeners, loops) run together; the first to return, SIGINT or SIGTERM
//!   starts a drain with a deadline; the result says whether anything failed.
//! - [`Health`]: readiness that turns false when the drain starts, served by
//!   [`DebugHandler`] at `/healthz` and `/readyz` and, with the `grpc` feature (which brings
//!   tonic), by the gRPC health service. Without it an HTTP-only service compiles no gRPC.
//! - [`DebugHandler`]: `/metrics` (Prometheus), `/healthz`, `/readyz`.
//! - [`ServerStack`]: logging, metrics, timeout and concurrency limit on an endpoint, in the
//!   right order, with room for tracing, rate limiting and breakers.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod debug;
mod group;
mod health;
mod stack;

pub use debug::DebugHandler;
pub use group::{Group, RunError, Signal};
pub use health::Health;
pub use stack::{Layers, ServerStack};

//! kit-trace: Zipkin-compatible request tracing on OpenTelemetry, with B3 and W3C propagation
//! over HTTP and gRPC.
//!
//! - [`ZipkinTracing::new`] sets up a tracer provider exporting Zipkin v2 JSON ([`zipkin`]),
//!   batched on tokio, with a sampling ratio; its `shutdown` flushes.
//! - [`propagation`] reads B3 (single and multi header) and W3C Trace Context and writes the
//!   formats chosen; malformed or hostile headers are ignored.
//! - [`Tracing`] puts endpoints in spans, the current span carried in kit-core's
//!   context ([`current`]); business errors are tagged, not marked as failures.
//! - Features `http` and `grpc`: SERVER spans from kit-transport-http and kit-transport-grpc
//!   hooks, and client-side injection (`http::inject`, `grpc::inject`).
//! - Feature `tracing`: spans opened through the `tracing` facade join kit's traces
//!   (`ZipkinTracing::tracing_layer`).
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;
pub mod propagation;
mod sampling;
mod span;
pub mod zipkin;

pub use propagation::{Extracted, Format, Propagation};
pub use span::{Tracing, TracingEndpoint, current, with_current};
pub use zipkin::{PEER_ADDRESS, PEER_PORT, PEER_SERVICE, ZipkinExporter, ZipkinTracing};

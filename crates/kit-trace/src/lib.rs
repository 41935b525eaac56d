//! kit-trace: Zipkin-compatible request tracing on OpenTelemetry, with B3 and W3C propagation
//! over HTTP and gRPC.
//!
//! - `ZipkinTracing::new` (feature `zipkin`, on by default) sets up a tracer provider exporting
//!   Zipkin v2 JSON (the `zipkin` module), batched on tokio, with a sampling ratio; its
//!   `shutdown` flushes. Without the feature, spans go to whatever OpenTelemetry provider the
//!   service sets up.
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
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub mod http;
pub mod propagation;
#[cfg(feature = "zipkin")]
mod sampling;
#[cfg(any(feature = "http", feature = "grpc"))]
mod server;
mod span;
#[cfg(feature = "zipkin")]
#[cfg_attr(docsrs, doc(cfg(feature = "zipkin")))]
pub mod zipkin;

pub use propagation::{Extracted, Format, Propagation};
#[cfg(any(feature = "http", feature = "grpc"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "http", feature = "grpc"))))]
pub use server::ServerTracing;
pub use span::{
    PEER_ADDRESS, PEER_PORT, PEER_SERVICE, Tracing, TracingEndpoint, current, with_current,
};
#[cfg(feature = "zipkin")]
#[cfg_attr(docsrs, doc(cfg(feature = "zipkin")))]
pub use zipkin::{ZipkinExporter, ZipkinTracing};

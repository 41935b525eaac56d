//! kit-trace: Zipkin-compatible request tracing on OpenTelemetry, with B3 and W3C propagation
//! over HTTP and gRPC.
//!
//! **Status: partly implemented** (RFC 0006). Ready: [`propagation`], reading B3 (single and
//! multi header) and W3C Trace Context, and writing the formats chosen, hardened against
//! hostile headers; [`zipkin`], the Zipkin v2 exporter and a one-call tracer setup
//! ([`Tracing::zipkin`]). Not built yet: the span middlewares for endpoints and transports.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

#[cfg(feature = "grpc")]
pub mod grpc;
#[cfg(feature = "http")]
pub mod http;
pub mod propagation;
mod span;
pub mod zipkin;

pub use propagation::{Extracted, Format, Propagation};
pub use span::{EndpointTracing, TracedEndpoint, current, with_current};
pub use zipkin::{PEER_ADDRESS, PEER_PORT, PEER_SERVICE, Tracing, ZipkinExporter};

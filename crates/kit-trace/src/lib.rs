//! kit-trace: Zipkin-compatible tracing on OpenTelemetry: spans around endpoints and transports, B3 and W3C propagation.
//!
//! **Status: Draft — not implemented yet.** This crate has no API yet; its planned scope is in
//! the RFC, `docs/rfcs/0006-kit-trace.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

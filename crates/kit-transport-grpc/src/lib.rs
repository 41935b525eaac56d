//! kit-transport-grpc: endpoints served and called over gRPC with tonic 0.14 and prost, interoperating with non-Rust gRPC.
//!
//! **Status: Draft — not implemented yet.** This crate has no API yet; its planned scope is in
//! the RFC, `docs/rfcs/0005-kit-transport-grpc.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

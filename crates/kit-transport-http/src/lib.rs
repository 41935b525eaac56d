//! kit-transport-http: endpoints served and called over HTTP/1.1 and HTTP/2 with hyper 1; JSON-RPC 2.0.
//!
//! **Status: Draft — not implemented yet.** This crate has no API yet; its planned scope is in
//! the RFC, `docs/rfcs/0004-kit-transport-http.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

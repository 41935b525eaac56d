//! kit-client: the caller's side: load balancing, retries with deadline and budget, circuit breaker, rate limiting.
//!
//! **Status: Draft — not implemented yet.** This crate has no API yet; its planned scope is in
//! the RFC, `docs/rfcs/0008-kit-client.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

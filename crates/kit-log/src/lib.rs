//! kit-log: go-kit-style structured logging on slog: key/value pairs, logfmt and JSON, contextual loggers, lazy values, levels.
//!
//! **Status: Draft — not implemented yet.** This crate has no API yet; its planned scope is in
//! the RFC, `docs/rfcs/0002-kit-log.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

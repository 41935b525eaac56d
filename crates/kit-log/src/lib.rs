//! kit-log: go-kit-style structured logging on slog.
//!
//! The user logs key/value pairs; the encoder decides the bytes. A [`Logger`] takes alternating
//! keys and values ([`log!`], [`info!`] and its siblings), carries context added with
//! [`Logger::with`], [`Logger::with_prefix`] and [`Logger::with_suffix`], and writes to a slog
//! drain: an encoder ([`Logfmt`], [`Json`]), usually behind a [`LevelFilter`]. Context values
//! may be lazy: [`timestamp_utc`], [`caller`], any [`FnValue`].
//!
//! ```
//! use kit_log::{caller, kv, timestamp_utc, Level, LevelFilter, Logfmt, Logger};
//! use slog::Drain;
//!
//! let drain = LevelFilter::new(Logfmt::new(std::io::stderr()).ignore_res(), Level::Info);
//! let logger = Logger::new(drain).with(kv!("ts", timestamp_utc(), "caller", caller()));
//! kit_log::info!(logger, "msg", "listening", "addr", "127.0.0.1:8081");
//! // level=info ts=2026-11-24T16:20:01.123456789Z caller=src/main.rs:6 msg=listening addr=127.0.0.1:8081
//! ```
//!
//! The encoders are plain slog drains, so slog's own macros work too, on a `slog::Logger` of
//! your own or on [`Logger::slog`]. Also here: a non-blocking writer ([`Encoder::non_blocking`])
//! that drops and counts records rather than making callers wait, the [`LogBridge`] for records
//! of the `log` crate, `TracingLayer` for `tracing` events (feature `tracing`), and the
//! [`Logging`] middleware for kit-core endpoints.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod encode;
mod json;
mod level;
mod log_bridge;
mod logfmt;
mod logger;
mod middleware;
mod non_blocking;
mod text;
#[cfg(feature = "tracing")]
mod tracing_layer;
mod value;

pub use encode::{Encoder, Format};
pub use json::{Json, JsonFormat};
pub use level::{Level, LevelFilter, NO_LEVEL_TAG, ParseLevelError, Verdict};
pub use log_bridge::LogBridge;
pub use logfmt::{Logfmt, LogfmtFormat};
pub use logger::{DrainOk, Logger, MISSING};
pub use middleware::{Logging, LoggingEndpoint};
pub use non_blocking::{NonBlocking, NonBlockingGuard};
pub use slog::FnValue;
#[cfg(feature = "tracing")]
pub use tracing_layer::TracingLayer;
pub use value::{Caller, Rfc3339, TimestampUtc, caller, timestamp_utc};

// The logging macros expand to slog paths through this.
#[doc(hidden)]
pub use slog as __slog;

// The README's example is compiled and run with the doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

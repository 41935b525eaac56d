//! kit-log: go-kit-style structured logging on slog.
//!
//! **Status: partly implemented** (RFC 0002 is Accepted). Ready: the logfmt and JSON encoders
//! ([`Logfmt`], [`Json`]) as slog drains, levels and the [`LevelFilter`], the lazy
//! [`timestamp_utc`] and [`caller`] values, and the [`EndpointLogging`] middleware. Not built
//! yet: the go-kit-style `Logger` (alternating keys and values, prefix and suffix context), the
//! asynchronous writer and the `log`/`tracing` bridges; see the RFC.
//!
//! The user logs key/value pairs; the encoder decides the bytes. Build a `slog::Logger` on one
//! of the encoders and log with slog's macros:
//!
//! ```
//! use slog::{info, o, Drain, Logger};
//! use kit_log::{caller, timestamp_utc, Level, LevelFilter, Logfmt};
//!
//! let drain = LevelFilter::new(Logfmt::new(std::io::stderr()), Level::Info);
//! let log = Logger::root(drain.ignore_res(), o!("ts" => timestamp_utc(), "caller" => caller()));
//! info!(log, "listening"; "addr" => "127.0.0.1:8081");
//! // level=info ts=2026-11-24T16:20:01.123456789Z caller=src/main.rs:7 msg=listening addr=127.0.0.1:8081
//! ```
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
#[cfg(feature = "tracing")]
mod tracing_layer;
mod value;

pub use encode::{Encoder, Format};
pub use json::{Json, JsonFormat};
pub use level::{Level, LevelFilter, NO_LEVEL_TAG, ParseLevelError, Verdict};
pub use log_bridge::LogBridge;
pub use logfmt::{Logfmt, LogfmtFormat};
pub use logger::{Logger, MISSING};
pub use middleware::{BusinessErrors, EndpointLogging, LoggedEndpoint, NoBusinessErrors};
pub use non_blocking::{NonBlocking, NonBlockingGuard};
pub use slog::FnValue;
#[cfg(feature = "tracing")]
pub use tracing_layer::TracingLayer;
pub use value::{Caller, Rfc3339, TimestampUtc, caller, timestamp_utc};

// The logging macros expand to slog paths through this.
#[doc(hidden)]
pub use logger::Pairs as __Pairs;
#[doc(hidden)]
pub use slog as __slog;

// The README's example is compiled and run with the doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

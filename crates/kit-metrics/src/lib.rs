//! kit-metrics: Counter, Gauge and Histogram with label values; Prometheus, StatsD, DogStatsD, Influx, Graphite, in-memory, discard and multi backends.
//!
//! **Status: Draft — not implemented yet.** This crate has no API yet; its planned scope is in
//! the RFC, `docs/rfcs/0003-kit-metrics.md`.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

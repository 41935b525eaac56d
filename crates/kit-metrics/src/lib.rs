//! kit-metrics: counters, gauges and histograms with label values, for services that must
//! report to whatever their operators run.
//!
//! Backends: `prometheus` (feature, on by default: pulled, with a `/metrics` handler), the push
//! backends `statsd` (StatsD and DogStatsD), `influx` and `graphite` (feature `push`, on by
//! default), and [`memory`], [`discard`] and [`Multi`].
//!
//! go-kit's rule holds here: **metrics are dependencies passed into constructors, never
//! globals.** A component that counts takes a [`Counter`] (or [`Gauge`], [`Histogram`]) as a
//! parameter, so that tests hand it an in-memory one ([`memory`]) and services pick a backend
//! in `main`. The traits are small: a metric is labelled with [`Counter::with`] (one value per
//! label name it was declared with; a wrong count is an error there, never a panic later) and
//! then updated. Resolve labels once, outside the hot path, when the values are known up front.
//!
//! ```
//! use kit_metrics::{Counter, Histogram, memory::{MemoryCounter, MemoryHistogram}};
//!
//! // A component takes its metrics as parameters.
//! struct Adder<C: Counter, H: Histogram> { summed: C, sizes: H }
//!
//! impl<C: Counter, H: Histogram> Adder<C, H> {
//!     fn add(&self, a: i64, b: i64) -> i64 {
//!         self.summed.add(1.0);
//!         self.sizes.observe((a + b) as f64);
//!         a + b
//!     }
//! }
//!
//! let summed = MemoryCounter::new("summed_total", &[]).unwrap();
//! let sizes = MemoryHistogram::new("sum_sizes", &[]).unwrap();
//! let adder = Adder { summed: summed.clone(), sizes: sizes.clone() };
//! adder.add(1, 2);
//! adder.add(3, 4);
//! assert_eq!(summed.value(&[]), 2.0);
//! assert_eq!(sizes.quantile(&[], 0.5), Some(3.0));
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod discard;
mod error;
#[cfg(feature = "facade")]
pub mod facade;
#[cfg(feature = "push")]
#[cfg_attr(docsrs, doc(cfg(feature = "push")))]
pub mod graphite;
#[cfg(feature = "push")]
#[cfg_attr(docsrs, doc(cfg(feature = "push")))]
pub mod influx;
pub mod memory;
mod middleware;
mod multi;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "push")]
mod push;
#[cfg(feature = "push")]
#[cfg_attr(docsrs, doc(cfg(feature = "push")))]
pub mod statsd;
mod timer;

pub use error::MetricError;
pub use middleware::{METHOD_OUTCOME_LABELS, Metrics, MetricsEndpoint};
pub use multi::Multi;
#[cfg(feature = "push")]
#[cfg_attr(docsrs, doc(cfg(feature = "push")))]
pub use push::{PushCounter, PushGauge, PushHistogram, PushOptions};
pub use timer::Timer;

/// A value that only goes up: requests served, bytes sent, errors.
///
/// Cloning is cheap and clones update the same series.
pub trait Counter: Clone + Send + Sync + 'static {
    /// The series for `label_values`, one per label name the counter was declared with, in
    /// the same order. A different number of values is [`MetricError::LabelArity`]; calling it
    /// on an instance that `with` returned is [`MetricError::AlreadyLabelled`] (all labels are
    /// given at once, on the metric as it was made).
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError>;

    /// Adds `delta`. Counters only go up: a negative or NaN delta is ignored, so that a bad
    /// value cannot corrupt the series for good.
    fn add(&self, delta: f64);
}

/// A value that goes up and down: queue depth, connections open, temperature.
///
/// Cloning is cheap and clones update the same series.
pub trait Gauge: Clone + Send + Sync + 'static {
    /// The series for `label_values`; see [`Counter::with`].
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError>;

    /// Sets the value. NaN and infinities are values too, written as each backend's format
    /// defines them.
    fn set(&self, value: f64);

    /// Adds `delta` (negative to subtract).
    fn add(&self, delta: f64);
}

/// A distribution of observed values: request durations, payload sizes.
///
/// Cloning is cheap and clones update the same series.
pub trait Histogram: Clone + Send + Sync + 'static {
    /// The series for `label_values`; see [`Counter::with`].
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError>;

    /// Records one observation.
    fn observe(&self, value: f64);
}

/// Checks that `label_values` has one value per label name.
pub(crate) fn check_arity(
    metric: &str,
    label_names: usize,
    label_values: &[&str],
) -> Result<(), MetricError> {
    if label_values.len() == label_names {
        Ok(())
    } else {
        Err(MetricError::LabelArity {
            metric: metric.to_owned(),
            expected: label_names,
            got: label_values.len(),
        })
    }
}

/// Checks a metric name: ASCII letters, digits, `_` and `:`, not starting with a digit (the
/// Prometheus rule, which the other formats accept too).
pub(crate) fn check_metric_name(name: &str) -> Result<(), MetricError> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if valid {
        Ok(())
    } else {
        Err(MetricError::InvalidName {
            name: name.to_owned(),
            reason: "metric names are ASCII letters, digits, '_' and ':', not starting with a digit",
        })
    }
}

/// Checks label names: ASCII letters, digits and `_`, not starting with a digit, not starting
/// with `__` (reserved), no duplicates.
pub(crate) fn check_label_names(names: &[&str]) -> Result<(), MetricError> {
    for (i, name) in names.iter().enumerate() {
        let valid = !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && !name.starts_with("__")
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(MetricError::InvalidName {
                name: (*name).to_owned(),
                reason: "label names are ASCII letters, digits and '_', not starting with a digit or '__'",
            });
        }
        if names[..i].contains(name) {
            return Err(MetricError::InvalidName {
                name: (*name).to_owned(),
                reason: "label names must be distinct",
            });
        }
    }
    Ok(())
}

// The README's example is compiled and run with the doc tests.
#[doc = include_str!("../README.md")]
#[cfg(all(doctest, feature = "prometheus"))]
pub struct ReadmeDoctests;

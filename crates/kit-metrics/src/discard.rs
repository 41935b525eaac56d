//! Metrics that record nothing: for components whose caller does not care, and as the
//! zero-cost default of an option.

use crate::{Counter, Gauge, Histogram, MetricError};

/// A counter, gauge and histogram in one that records nothing; `with` accepts any labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Discard;

impl Counter for Discard {
    fn with(&self, _: &[&str]) -> Result<Self, MetricError> {
        Ok(Discard)
    }
    fn add(&self, _: f64) {}
}

impl Gauge for Discard {
    fn with(&self, _: &[&str]) -> Result<Self, MetricError> {
        Ok(Discard)
    }
    fn set(&self, _: f64) {}
    fn add(&self, _: f64) {}
}

impl Histogram for Discard {
    fn with(&self, _: &[&str]) -> Result<Self, MetricError> {
        Ok(Discard)
    }
    fn observe(&self, _: f64) {}
}

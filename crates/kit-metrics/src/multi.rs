//! Fan-out: one metric that updates two (or, nested, more) others.

use crate::{Counter, Gauge, Histogram, MetricError};

/// Updates both `A` and `B` (go-kit's `multi` package); nest it for more:
/// `Multi(a, Multi(b, c))`. `with` labels both, and fails if either fails.
///
/// ```
/// use kit_metrics::{Counter, Multi, memory::MemoryCounter};
///
/// let a = MemoryCounter::new("a_total", &["m"]).unwrap();
/// let b = MemoryCounter::new("b_total", &["m"]).unwrap();
/// let both = Multi(a.clone(), b.clone());
/// both.with(&["sum"]).unwrap().add(2.0);
/// assert_eq!((a.value(&["sum"]), b.value(&["sum"])), (2.0, 2.0));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Multi<A, B>(pub A, pub B);

impl<A: Counter, B: Counter> Counter for Multi<A, B> {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        Ok(Multi(
            self.0.with(label_values)?,
            self.1.with(label_values)?,
        ))
    }
    fn add(&self, delta: f64) {
        self.0.add(delta);
        self.1.add(delta);
    }
}

impl<A: Gauge, B: Gauge> Gauge for Multi<A, B> {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        Ok(Multi(
            self.0.with(label_values)?,
            self.1.with(label_values)?,
        ))
    }
    fn set(&self, value: f64) {
        self.0.set(value);
        self.1.set(value);
    }
    fn add(&self, delta: f64) {
        self.0.add(delta);
        self.1.add(delta);
    }
}

impl<A: Histogram, B: Histogram> Histogram for Multi<A, B> {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        Ok(Multi(
            self.0.with(label_values)?,
            self.1.with(label_values)?,
        ))
    }
    fn observe(&self, value: f64) {
        self.0.observe(value);
        self.1.observe(value);
    }
}

//! In-memory metrics for tests: every series is kept and can be read back (values, raw
//! observations, quantiles).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::{
    Counter, Gauge, Histogram, MetricError, check_arity, check_label_names, check_metric_name,
};

/// The series of one metric, by label values.
#[derive(Debug)]
struct Family<T> {
    name: String,
    label_names: usize,
    series: Mutex<HashMap<Vec<String>, T>>,
}

impl<T: Default> Family<T> {
    fn new(name: &str, label_names: &[&str]) -> Result<Arc<Self>, MetricError> {
        check_metric_name(name)?;
        check_label_names(label_names)?;
        Ok(Arc::new(Family {
            name: name.to_owned(),
            label_names: label_names.len(),
            series: Mutex::new(HashMap::new()),
        }))
    }

    fn update(&self, labels: &[String], f: impl FnOnce(&mut T)) {
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        match series.get_mut(labels) {
            Some(value) => f(value),
            None => f(series.entry(labels.to_vec()).or_default()),
        }
    }

    fn read<R>(&self, labels: &[&str], f: impl FnOnce(Option<&T>) -> R) -> R {
        let key: Vec<String> = labels.iter().map(|s| (*s).to_owned()).collect();
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        f(series.get(&key))
    }

    fn labelled(&self, already: bool, label_values: &[&str]) -> Result<Vec<String>, MetricError> {
        if already {
            return Err(MetricError::AlreadyLabelled {
                metric: self.name.clone(),
            });
        }
        check_arity(&self.name, self.label_names, label_values)?;
        Ok(label_values.iter().map(|s| (*s).to_owned()).collect())
    }

    /// The label values of an instance that was never labelled: empty strings.
    fn unlabelled(&self) -> Vec<String> {
        vec![String::new(); self.label_names]
    }
}

/// A counter kept in memory.
#[derive(Clone, Debug)]
pub struct MemoryCounter {
    family: Arc<Family<f64>>,
    labels: Vec<String>,
    labelled: bool,
}

impl MemoryCounter {
    /// A counter named `name` with `label_names`.
    pub fn new(name: &str, label_names: &[&str]) -> Result<Self, MetricError> {
        let family = Family::new(name, label_names)?;
        Ok(MemoryCounter {
            labels: family.unlabelled(),
            labelled: false,
            family,
        })
    }

    /// The value of the series with `label_values` (0 if never added to).
    pub fn value(&self, label_values: &[&str]) -> f64 {
        self.family
            .read(label_values, |v| v.copied().unwrap_or(0.0))
    }
}

impl Counter for MemoryCounter {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        Ok(MemoryCounter {
            family: Arc::clone(&self.family),
            labels: self.family.labelled(self.labelled, label_values)?,
            labelled: true,
        })
    }

    fn add(&self, delta: f64) {
        if delta >= 0.0 {
            self.family.update(&self.labels, |v| *v += delta);
        }
    }
}

/// A gauge kept in memory.
#[derive(Clone, Debug)]
pub struct MemoryGauge {
    family: Arc<Family<f64>>,
    labels: Vec<String>,
    labelled: bool,
}

impl MemoryGauge {
    /// A gauge named `name` with `label_names`.
    pub fn new(name: &str, label_names: &[&str]) -> Result<Self, MetricError> {
        let family = Family::new(name, label_names)?;
        Ok(MemoryGauge {
            labels: family.unlabelled(),
            labelled: false,
            family,
        })
    }

    /// The value of the series with `label_values` (0 if never set).
    pub fn value(&self, label_values: &[&str]) -> f64 {
        self.family
            .read(label_values, |v| v.copied().unwrap_or(0.0))
    }
}

impl Gauge for MemoryGauge {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        Ok(MemoryGauge {
            family: Arc::clone(&self.family),
            labels: self.family.labelled(self.labelled, label_values)?,
            labelled: true,
        })
    }

    fn set(&self, value: f64) {
        self.family.update(&self.labels, |v| *v = value);
    }

    fn add(&self, delta: f64) {
        self.family.update(&self.labels, |v| *v += delta);
    }
}

/// A histogram kept in memory: every observation, in order.
#[derive(Clone, Debug)]
pub struct MemoryHistogram {
    family: Arc<Family<Vec<f64>>>,
    labels: Vec<String>,
    labelled: bool,
}

impl MemoryHistogram {
    /// A histogram named `name` with `label_names`.
    pub fn new(name: &str, label_names: &[&str]) -> Result<Self, MetricError> {
        let family = Family::new(name, label_names)?;
        Ok(MemoryHistogram {
            labels: family.unlabelled(),
            labelled: false,
            family,
        })
    }

    /// The observations of the series with `label_values`, in the order made.
    pub fn observations(&self, label_values: &[&str]) -> Vec<f64> {
        self.family
            .read(label_values, |v| v.cloned().unwrap_or_default())
    }

    /// The `q` quantile (0 to 1) of the series' observations, by the nearest-rank method; `None`
    /// without observations. NaN observations sort last.
    pub fn quantile(&self, label_values: &[&str], q: f64) -> Option<f64> {
        let mut values = self.observations(label_values);
        if values.is_empty() || !(0.0..=1.0).contains(&q) {
            return None;
        }
        values.sort_by(f64::total_cmp);
        Some(quantile(&values, q))
    }
}

impl Histogram for MemoryHistogram {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        Ok(MemoryHistogram {
            family: Arc::clone(&self.family),
            labels: self.family.labelled(self.labelled, label_values)?,
            labelled: true,
        })
    }

    fn observe(&self, value: f64) {
        self.family.update(&self.labels, |v| v.push(value));
    }
}

/// The `q` quantile (0 to 1) by nearest rank of sorted, non-empty `values`.
pub(crate) fn quantile(sorted: &[f64], q: f64) -> f64 {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

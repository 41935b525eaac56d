//! The one error type of kit-metrics: every problem is found when a metric is made or labelled.

/// A metric could not be made or labelled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetricError {
    /// A metric or label name the backends cannot write.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What the rule is.
        reason: &'static str,
    },
    /// `with` got a different number of label values than the metric has label names.
    #[error("metric {metric:?} has {expected} label names but was given {got} label values")]
    LabelArity {
        /// The metric's name.
        metric: String,
        /// How many label names it was declared with.
        expected: usize,
        /// How many values were given.
        got: usize,
    },
    /// `with` was called on an instance that was already labelled; label the metric as it was
    /// made, with all its label values at once.
    #[error("metric {metric:?} is already labelled: call with() on the metric as it was made")]
    AlreadyLabelled {
        /// The metric's name.
        metric: String,
    },
    /// The backend refused the metric (for Prometheus: a name already registered with other
    /// labels or help).
    #[error("{0}")]
    Backend(String),
}

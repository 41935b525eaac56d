//! Prometheus metrics on the `prometheus` crate (feature `prometheus`, on by default), and the
//! text exposition that a Prometheus server scrapes.
//!
//! Each metric is registered in a [`Registry`] the caller owns and passes in: no global
//! registry. [`PrometheusHandler`] serves a registry's exposition as a `tower::Service`, so it
//! mounts in kit-transport-http, hyper or axum.
//!
//! Summaries are not offered: the `prometheus` crate has none, and histograms give the same
//! quantiles server-side, aggregatable across instances.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use prometheus::core::Collector;
use prometheus::{CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, Opts, TextEncoder};
pub use prometheus::{DEFAULT_BUCKETS, Registry};

use crate::{
    Counter, Gauge, Histogram, MetricError, check_arity, check_label_names, check_metric_name,
};

/// The label value of series updated through an instance that was never labelled, as go-kit
/// writes it.
const UNKNOWN: &str = "unknown";

fn register(
    registry: &Registry,
    collector: impl Collector + Clone + 'static,
) -> Result<(), MetricError> {
    registry
        .register(Box::new(collector))
        .map_err(|err| MetricError::Backend(err.to_string()))
}

fn backend(err: prometheus::Error) -> MetricError {
    MetricError::Backend(err.to_string())
}

fn arity_or_backend<V>(
    family: &Family<V>,
    label_values: &[&str],
    err: prometheus::Error,
) -> MetricError {
    match check_arity(&family.name, family.label_names, label_values) {
        Err(arity) => arity,
        Ok(()) => backend(err),
    }
}

/// The family of an instance as made, or the error for calling `with` on a labelled one.
fn made<'a, V, M: Collector>(
    family: &'a Option<Arc<Family<V>>>,
    series: Option<&M>,
) -> Result<&'a Family<V>, MetricError> {
    family
        .as_deref()
        .ok_or_else(|| MetricError::AlreadyLabelled {
            metric: series
                .and_then(|s| s.desc().first().map(|d| d.fq_name.clone()))
                .unwrap_or_default(),
        })
}

/// The series an instance that was never labelled updates: the only one for a metric without
/// labels, or the one with every label `unknown` (go-kit's choice), made on first use so that a
/// labelled metric shows no `unknown` series it never had.
fn unknown<T>(label_names: usize, get: impl FnOnce(&[&str]) -> prometheus::Result<T>) -> Option<T> {
    get(&vec![UNKNOWN; label_names]).ok()
}

/// What the instances of one metric share: shared behind one `Arc`, so that labelling an
/// instance costs one reference count.
#[derive(Debug)]
struct Family<V> {
    vec: V,
    name: Box<str>,
    label_names: usize,
}

/// A Prometheus counter: a `CounterVec` registered in a registry, and one of its series.
#[derive(Clone, Debug)]
pub struct PrometheusCounter {
    /// The metric as made; `None` in labelled instances, which need only their series (so
    /// that labelling per call costs what the `prometheus` crate's lookup costs).
    family: Option<Arc<Family<CounterVec>>>,
    series: Option<prometheus::Counter>,
}

impl PrometheusCounter {
    /// Registers a counter named `name` (by Prometheus convention ending in `_total`) with
    /// `help` and `label_names` in `registry`.
    ///
    /// ```
    /// use kit_metrics::{Counter, prometheus::{PrometheusCounter, text}};
    ///
    /// let registry = prometheus::Registry::new();
    /// let requests =
    ///     PrometheusCounter::new(&registry, "requests_total", "Requests served.", &["method"]).unwrap();
    /// requests.with(&["sum"]).unwrap().add(1.0);
    /// assert!(text(&registry).contains("requests_total{method=\"sum\"} 1"));
    /// ```
    pub fn new(
        registry: &Registry,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<Self, MetricError> {
        check_metric_name(name)?;
        check_label_names(label_names)?;
        let vec = CounterVec::new(Opts::new(name, help), label_names).map_err(backend)?;
        register(registry, vec.clone())?;
        let series = match label_names {
            [] => Some(
                vec.get_metric_with_label_values(&[] as &[&str])
                    .map_err(backend)?,
            ),
            _ => None,
        };
        Ok(PrometheusCounter {
            family: Some(Arc::new(Family {
                vec,
                name: name.into(),
                label_names: label_names.len(),
            })),
            series,
        })
    }
}

impl PrometheusCounter {
    /// The `unknown` series, for updates through the metric as made.
    fn unknown_series(&self) -> Option<prometheus::Counter> {
        let family = self.family.as_ref()?;
        unknown(family.label_names, |v| {
            family.vec.get_metric_with_label_values(v)
        })
    }
}

impl Counter for PrometheusCounter {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        let family = made(&self.family, self.series.as_ref())?;
        // The crate checks the arity itself; its error becomes ours.
        let series = family
            .vec
            .get_metric_with_label_values(label_values)
            .map_err(|err| arity_or_backend(family, label_values, err))?;
        Ok(PrometheusCounter {
            family: None,
            series: Some(series),
        })
    }

    fn add(&self, delta: f64) {
        // NaN and negative deltas are dropped: the prometheus crate asserts against them in
        // debug builds, and a NaN would stick to the counter for good.
        if delta.is_nan() || delta < 0.0 {
            return;
        }
        match &self.series {
            Some(series) => series.inc_by(delta),
            None => {
                if let Some(series) = self.unknown_series() {
                    series.inc_by(delta);
                }
            }
        }
    }
}

/// A Prometheus gauge: a `GaugeVec` registered in a registry, and one of its series.
#[derive(Clone, Debug)]
pub struct PrometheusGauge {
    /// The metric as made; `None` in labelled instances, which need only their series (so
    /// that labelling per call costs what the `prometheus` crate's lookup costs).
    family: Option<Arc<Family<GaugeVec>>>,
    series: Option<prometheus::Gauge>,
}

impl PrometheusGauge {
    /// Registers a gauge named `name` with `help` and `label_names` in `registry`.
    pub fn new(
        registry: &Registry,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<Self, MetricError> {
        check_metric_name(name)?;
        check_label_names(label_names)?;
        let vec = GaugeVec::new(Opts::new(name, help), label_names).map_err(backend)?;
        register(registry, vec.clone())?;
        let series = match label_names {
            [] => Some(
                vec.get_metric_with_label_values(&[] as &[&str])
                    .map_err(backend)?,
            ),
            _ => None,
        };
        Ok(PrometheusGauge {
            family: Some(Arc::new(Family {
                vec,
                name: name.into(),
                label_names: label_names.len(),
            })),
            series,
        })
    }

    fn update(&self, f: impl FnOnce(&prometheus::Gauge)) {
        match &self.series {
            Some(series) => f(series),
            None => {
                if let Some(series) = self.unknown_series() {
                    f(&series);
                }
            }
        }
    }
}

impl PrometheusGauge {
    /// The `unknown` series, for updates through the metric as made.
    fn unknown_series(&self) -> Option<prometheus::Gauge> {
        let family = self.family.as_ref()?;
        unknown(family.label_names, |v| {
            family.vec.get_metric_with_label_values(v)
        })
    }
}

impl Gauge for PrometheusGauge {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        let family = made(&self.family, self.series.as_ref())?;
        // The crate checks the arity itself; its error becomes ours.
        let series = family
            .vec
            .get_metric_with_label_values(label_values)
            .map_err(|err| arity_or_backend(family, label_values, err))?;
        Ok(PrometheusGauge {
            family: None,
            series: Some(series),
        })
    }

    fn set(&self, value: f64) {
        self.update(|g| g.set(value));
    }

    fn add(&self, delta: f64) {
        self.update(|g| g.add(delta));
    }
}

/// A Prometheus histogram: a `HistogramVec` registered in a registry, and one of its series.
#[derive(Clone, Debug)]
pub struct PrometheusHistogram {
    /// The metric as made; `None` in labelled instances, which need only their series (so
    /// that labelling per call costs what the `prometheus` crate's lookup costs).
    family: Option<Arc<Family<HistogramVec>>>,
    series: Option<prometheus::Histogram>,
}

impl PrometheusHistogram {
    /// Registers a histogram named `name` with `help`, `label_names` and bucket upper bounds
    /// `buckets` (increasing; `+Inf` is implied) in `registry`. For durations in seconds,
    /// [`DEFAULT_BUCKETS`] (5 ms to 10 s) is a usual start.
    pub fn new(
        registry: &Registry,
        name: &str,
        help: &str,
        label_names: &[&str],
        buckets: Vec<f64>,
    ) -> Result<Self, MetricError> {
        check_metric_name(name)?;
        check_label_names(label_names)?;
        let opts = HistogramOpts::new(name, help).buckets(buckets);
        let vec = HistogramVec::new(opts, label_names).map_err(backend)?;
        register(registry, vec.clone())?;
        let series = match label_names {
            [] => Some(
                vec.get_metric_with_label_values(&[] as &[&str])
                    .map_err(backend)?,
            ),
            _ => None,
        };
        Ok(PrometheusHistogram {
            family: Some(Arc::new(Family {
                vec,
                name: name.into(),
                label_names: label_names.len(),
            })),
            series,
        })
    }
}

impl PrometheusHistogram {
    /// The `unknown` series, for updates through the metric as made.
    fn unknown_series(&self) -> Option<prometheus::Histogram> {
        let family = self.family.as_ref()?;
        unknown(family.label_names, |v| {
            family.vec.get_metric_with_label_values(v)
        })
    }
}

impl Histogram for PrometheusHistogram {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        let family = made(&self.family, self.series.as_ref())?;
        // The crate checks the arity itself; its error becomes ours.
        let series = family
            .vec
            .get_metric_with_label_values(label_values)
            .map_err(|err| arity_or_backend(family, label_values, err))?;
        Ok(PrometheusHistogram {
            family: None,
            series: Some(series),
        })
    }

    fn observe(&self, value: f64) {
        match &self.series {
            Some(series) => series.observe(value),
            None => {
                if let Some(series) = self.unknown_series() {
                    series.observe(value);
                }
            }
        }
    }
}

/// The Prometheus text exposition (format 0.0.4) of everything in `registry`.
///
/// Infinite sample values are written `+Inf` and `-Inf`, as the format defines them (the
/// `prometheus` crate writes Rust's `inf`, which Prometheus happens to parse but other readers
/// of the format need not).
pub fn text(registry: &Registry) -> String {
    let mut out = Vec::new();
    // Encoding into a Vec fails only for metric families the crate itself would not build.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    let encoded = String::from_utf8(out).unwrap_or_default();
    if !encoded.contains("inf\n") {
        return encoded;
    }
    let mut fixed = String::with_capacity(encoded.len() + 16);
    for line in encoded.split_inclusive('\n') {
        // A sample line ends with its value; label values are inside the braces before it.
        let body = line.strip_suffix('\n').unwrap_or(line);
        let value_at = body.rfind(' ').map_or(0, |i| i + 1);
        let (head, value) = body.split_at(value_at);
        match (line.starts_with('#'), value) {
            (false, "inf") => fixed.push_str(&format!("{head}+Inf\n")),
            (false, "-inf") => fixed.push_str(&format!("{head}-Inf\n")),
            _ => fixed.push_str(line),
        }
    }
    fixed
}

/// Serves a registry's text exposition, for any request (mount it at `/metrics`): a
/// `tower::Service` for any request body, so it goes in a kit-transport-http listener, a hyper
/// server or an axum router.
///
/// ```
/// use kit_metrics::prometheus::PrometheusHandler;
/// use tower_service::Service;
///
/// let registry = prometheus::Registry::new();
/// let mut handler = PrometheusHandler::new(registry);
/// # let _ = &mut handler;
/// ```
#[derive(Clone, Debug)]
pub struct PrometheusHandler {
    registry: Registry,
}

impl PrometheusHandler {
    /// Serves `registry`.
    pub fn new(registry: Registry) -> Self {
        PrometheusHandler { registry }
    }
}

impl<B> tower_service::Service<http::Request<B>> for PrometheusHandler {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Full<Bytes>>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: http::Request<B>) -> Self::Future {
        let mut response = Response::new(Full::new(Bytes::from(text(&self.registry))));
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        ready(Ok(response))
    }
}

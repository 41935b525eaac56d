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
use prometheus::core::{Collector, MetricVec, MetricVecBuilder};
use prometheus::{CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, Opts, TextEncoder};
pub use prometheus::{DEFAULT_BUCKETS, Registry};

use crate::{
    Counter, Gauge, Histogram, MetricError, check_arity, check_label_names, check_metric_name,
};

/// The label value of series updated through an instance that was never labelled, as go-kit
/// writes it.
const UNKNOWN: &str = "unknown";

fn backend(err: prometheus::Error) -> MetricError {
    MetricError::Backend(err.to_string())
}

/// What the instances of one metric share, behind one `Arc`.
#[derive(Debug)]
struct Family<V> {
    vec: V,
    name: Box<str>,
    label_names: usize,
}

/// A Prometheus metric: a metric vector registered in a registry, and one of its series. Used
/// as [`PrometheusCounter`], [`PrometheusGauge`] and [`PrometheusHistogram`].
///
/// The metric as made keeps the vector; the instances `with` returns keep only their series,
/// so that labelling per call costs what the `prometheus` crate's lookup costs. Updates through
/// the metric as made go to its only series (no labels) or to the one whose labels are all
/// `unknown` (go-kit's choice), made on first use so that a labelled metric shows no `unknown`
/// series it never had.
#[derive(Clone, Debug)]
pub struct PrometheusMetric<T: MetricVecBuilder> {
    /// `None` in labelled instances.
    family: Option<Arc<Family<MetricVec<T>>>>,
    series: Option<T::M>,
}

/// A Prometheus counter (a `CounterVec` and one of its series).
pub type PrometheusCounter = PrometheusMetric<<CounterVec as VecBuilder>::Builder>;
/// A Prometheus gauge (a `GaugeVec` and one of its series).
pub type PrometheusGauge = PrometheusMetric<<GaugeVec as VecBuilder>::Builder>;
/// A Prometheus histogram (a `HistogramVec` and one of its series).
pub type PrometheusHistogram = PrometheusMetric<<HistogramVec as VecBuilder>::Builder>;

/// Names the builder of a metric vector, which the `prometheus` crate does not export.
#[doc(hidden)]
pub trait VecBuilder {
    /// The vector's builder.
    type Builder: MetricVecBuilder;
}

impl<T: MetricVecBuilder> VecBuilder for MetricVec<T> {
    type Builder = T;
}

impl<T: MetricVecBuilder> PrometheusMetric<T>
where
    MetricVec<T>: Collector + Clone + 'static,
    T::M: Collector,
{
    /// Registers `vec` (named `name`, with `label_names`) in `registry`.
    fn register(
        registry: &Registry,
        name: &str,
        label_names: &[&str],
        vec: impl FnOnce() -> prometheus::Result<MetricVec<T>>,
    ) -> Result<Self, MetricError> {
        check_metric_name(name)?;
        check_label_names(label_names)?;
        let vec = vec().map_err(backend)?;
        registry.register(Box::new(vec.clone())).map_err(backend)?;
        let series = match label_names {
            [] => Some(
                vec.get_metric_with_label_values(&[] as &[&str])
                    .map_err(backend)?,
            ),
            _ => None,
        };
        let family = Family {
            vec,
            name: name.into(),
            label_names: label_names.len(),
        };
        Ok(PrometheusMetric {
            family: Some(Arc::new(family)),
            series,
        })
    }

    fn labelled(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        let Some(family) = &self.family else {
            let metric = self
                .series
                .as_ref()
                .and_then(|s| s.desc().first().map(|d| d.fq_name.clone()))
                .unwrap_or_default();
            return Err(MetricError::AlreadyLabelled { metric });
        };
        // The crate checks the arity itself; its error becomes ours.
        let series = family
            .vec
            .get_metric_with_label_values(label_values)
            .map_err(
                |err| match check_arity(&family.name, family.label_names, label_values) {
                    Err(arity) => arity,
                    Ok(()) => backend(err),
                },
            )?;
        Ok(PrometheusMetric {
            family: None,
            series: Some(series),
        })
    }

    fn update(&self, f: impl FnOnce(&T::M)) {
        match (&self.series, &self.family) {
            (Some(series), _) => f(series),
            (None, Some(family)) => {
                let unknown = vec![UNKNOWN; family.label_names];
                if let Ok(series) = family.vec.get_metric_with_label_values(&unknown) {
                    f(&series);
                }
            }
            (None, None) => {}
        }
    }
}

impl PrometheusCounter {
    /// Registers a counter named `name` (by Prometheus convention ending in `_total`) with
    /// `help` and `label_names` in `registry`.
    ///
    /// ```
    /// use kit_metrics::{Counter, prometheus::{PrometheusCounter, Registry, text}};
    ///
    /// let registry = Registry::new();
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
        Self::register(registry, name, label_names, || {
            CounterVec::new(Opts::new(name, help), label_names)
        })
    }
}

impl Counter for PrometheusCounter {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        self.labelled(label_values)
    }

    fn add(&self, delta: f64) {
        // NaN and negative deltas are dropped: the prometheus crate asserts against them in
        // debug builds, and a NaN would stick to the counter for good.
        if delta.is_nan() || delta < 0.0 {
            return;
        }
        self.update(|c| c.inc_by(delta));
    }
}

impl PrometheusGauge {
    /// Registers a gauge named `name` with `help` and `label_names` in `registry`.
    pub fn new(
        registry: &Registry,
        name: &str,
        help: &str,
        label_names: &[&str],
    ) -> Result<Self, MetricError> {
        Self::register(registry, name, label_names, || {
            GaugeVec::new(Opts::new(name, help), label_names)
        })
    }
}

impl Gauge for PrometheusGauge {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        self.labelled(label_values)
    }

    fn set(&self, value: f64) {
        self.update(|g| g.set(value));
    }

    fn add(&self, delta: f64) {
        self.update(|g| g.add(delta));
    }
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
        Self::register(registry, name, label_names, || {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), label_names)
        })
    }
}

impl Histogram for PrometheusHistogram {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        self.labelled(label_values)
    }

    fn observe(&self, value: f64) {
        self.update(|h| h.observe(value));
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

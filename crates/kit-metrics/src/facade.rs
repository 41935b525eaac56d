//! The [`metrics`] facade's recorder on a Prometheus registry: what any library records with
//! `metrics::counter!`, `gauge!` and `histogram!` shows up on the same `/metrics` as the
//! service's own kit metrics.
//!
//! ```
//! use kit_metrics::facade::FacadeRecorder;
//! use kit_metrics::prometheus::{Registry, text};
//!
//! let registry = Registry::new();
//! let recorder = FacadeRecorder::new(&registry);
//! // In a service: `metrics::set_global_recorder(recorder)` once, at start.
//! metrics::with_local_recorder(&recorder, || {
//!     metrics::describe_counter!("cache.hits", "Lookups answered from the cache.");
//!     metrics::counter!("cache.hits", "cache" => "users").increment(3);
//! });
//! assert!(text(&registry).contains(r#"cache_hits_total{cache="users"} 3"#));
//! ```
//!
//! How the facade's model maps onto Prometheus's:
//!
//! - **Names** are made valid Prometheus names: every character outside `[a-zA-Z0-9_:]`
//!   becomes `_` (so `http.requests` is `http_requests`), a leading digit gets a `_` before it,
//!   a described unit other than a count is appended (`_seconds`, `_bytes`), and counters end
//!   in `_total`. **Label names** likewise, within `[a-zA-Z0-9_]`, without the reserved `__`
//!   prefix.
//! - **A family's label names are fixed** by its first registration (in sorted order, so the
//!   order of a call's labels does not matter), as Prometheus requires. A later registration
//!   under the same name with other label names, or of another kind, or a name that the
//!   registry already holds (a kit metric), is not recorded: it gets a handle that does
//!   nothing, and `kit_metrics_facade_rejected_total{name}` counts it (each refused
//!   registration: the facade's macros register at every use; past 100 names, under
//!   `name="_other"`).
//! - **Series are capped**: labels are the library's to choose, and a label with unbounded
//!   values would grow the registry for ever. Past [`FacadeRecorder::max_series`] (default
//!   10,000) a new series is rejected and counted the same way, before any family is made for
//!   it; existing ones go on.
//! - **Registration is not free**: each `counter!(...)` takes the recorder's lock and looks the
//!   series up. On a hot path, keep the handle the macro returns and update that.
//! - **Descriptions and units** apply to families registered after them (Prometheus fixes a
//!   family's help text when it is created): describe at start, as the facade advises. A
//!   family never described gets its name as help.
//! - A counter's `absolute` raises the counter to the value (never lowers it); histograms use
//!   [`FacadeRecorder::buckets`] (default Prometheus's, 5 ms to 10 s).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use prometheus::core::Collector;
use prometheus::{GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Records the facade's metrics into a Prometheus [`Registry`]. Cheap to clone; clones share
/// their families and settings.
#[derive(Clone)]
pub struct FacadeRecorder {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    rejected: IntCounterVec,
    /// The names `rejected` has a series for.
    rejected_names: Mutex<HashSet<String>>,
    state: Mutex<State>,
}

struct State {
    buckets: Vec<f64>,
    max_series: usize,
    /// By the facade's name: unit and description.
    described: HashMap<String, (Option<Unit>, SharedString)>,
    /// By the exposed name.
    families: HashMap<String, Family>,
    /// Every series handed out: exposed name and label values.
    series: HashSet<(String, Vec<String>)>,
}

struct Family {
    kind: Kind,
    label_names: Vec<String>,
    vec: FamilyVec,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

enum FamilyVec {
    Counter(IntCounterVec),
    Gauge(GaugeVec),
    Histogram(HistogramVec),
}

impl std::fmt::Debug for FacadeRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("FacadeRecorder")
            .field("buckets", &state.buckets)
            .field("max_series", &state.max_series)
            .field("series", &state.series.len())
            .finish_non_exhaustive()
    }
}

/// The series cap [`FacadeRecorder::new`] sets.
const MAX_SERIES: usize = 10_000;

/// The most names `kit_metrics_facade_rejected_total` has a series for; the rest count under
/// `_other`.
const MAX_REJECTED_NAMES: usize = 100;

impl FacadeRecorder {
    /// A recorder registering into `registry`, with Prometheus's default buckets and at most
    /// 10,000 series.
    ///
    /// # Panics
    ///
    /// If `registry` already holds `kit_metrics_facade_rejected_total`: one recorder per
    /// registry.
    pub fn new(registry: &Registry) -> FacadeRecorder {
        let rejected = IntCounterVec::new(
            Opts::new(
                "kit_metrics_facade_rejected_total",
                "Registrations through the metrics facade that were not recorded: a name \
                 taken by another kind, other labels or a kit metric, or past the series cap.",
            ),
            &["name"],
        )
        .expect("a valid name and label");
        if let Err(err) = registry.register(Box::new(rejected.clone())) {
            panic!("one facade recorder per registry: {err}");
        }
        FacadeRecorder {
            inner: Arc::new(Inner {
                registry: registry.clone(),
                rejected,
                rejected_names: Mutex::new(HashSet::new()),
                state: Mutex::new(State {
                    buckets: prometheus::DEFAULT_BUCKETS.to_vec(),
                    max_series: MAX_SERIES,
                    described: HashMap::new(),
                    families: HashMap::new(),
                    series: HashSet::new(),
                }),
            }),
        }
    }

    /// The bucket bounds of every histogram family registered from now on. Default
    /// Prometheus's.
    #[must_use]
    pub fn buckets(self, buckets: Vec<f64>) -> FacadeRecorder {
        self.inner.lock().buckets = buckets;
        self
    }

    /// The most series (a name and its label values) recorded; past it, new series are
    /// rejected. Default 10,000.
    #[must_use]
    pub fn max_series(self, series: usize) -> FacadeRecorder {
        self.inner.lock().max_series = series;
        self
    }

    fn describe(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner
            .lock()
            .described
            .insert(key.as_str().to_owned(), (unit, description));
    }

    /// The series for `key` in a family of `kind`, taken from the family by `pick`; `None`,
    /// counted as rejected, when the family or the series cannot be had.
    fn register<T>(
        &self,
        key: &Key,
        kind: Kind,
        pick: impl FnOnce(&FamilyVec, &[&str]) -> Option<T>,
    ) -> Option<T> {
        let mut labels: Vec<(String, String)> = key
            .labels()
            .map(|l| (label_name(l.key()), l.value().to_owned()))
            .collect();
        labels.sort();
        let (label_names, values): (Vec<String>, Vec<String>) = labels.into_iter().unzip();
        let mut state = self.inner.lock();
        let State {
            buckets,
            max_series,
            described,
            families,
            series,
        } = &mut *state;
        let described = described.get(key.name());
        let name = exposed_name(key.name(), described.and_then(|(unit, _)| *unit), kind);
        let id = (name.clone(), values);
        // The cap first: a library that makes up names or label values as it goes must not
        // grow the registry by families either.
        let known = series.contains(&id);
        if !known && series.len() >= *max_series {
            drop(state);
            self.rejected(&name);
            return None;
        }
        if !families.contains_key(&name) {
            // The help is copied only for a new family, not at every registration.
            let help = described.map_or_else(|| name.clone(), |(_, help)| help.to_string());
            if let Some(family) = self.new_family(&name, &help, kind, label_names.clone(), buckets)
            {
                families.insert(name.clone(), family);
            }
        }
        let picked = families
            .get(&name)
            .filter(|family| family.kind == kind && family.label_names == label_names)
            .and_then(|family| {
                let values: Vec<&str> = id.1.iter().map(String::as_str).collect();
                pick(&family.vec, &values)
            });
        if picked.is_some() && !known {
            series.insert(id);
        }
        drop(state);
        if picked.is_none() {
            self.rejected(&name);
        }
        picked
    }

    /// Counts a refused registration under `name`, or under `_other` once 100 names have been
    /// refused: the refusals must not grow the registry either.
    fn rejected(&self, name: &str) {
        let mut names = self
            .inner
            .rejected_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let label = if names.contains(name) {
            name
        } else if names.len() < MAX_REJECTED_NAMES {
            names.insert(name.to_owned());
            name
        } else {
            "_other"
        };
        self.inner.rejected.with_label_values(&[label]).inc();
    }

    fn new_family(
        &self,
        name: &str,
        help: &str,
        kind: Kind,
        label_names: Vec<String>,
        buckets: &[f64],
    ) -> Option<Family> {
        let names: Vec<&str> = label_names.iter().map(String::as_str).collect();
        let opts = Opts::new(name, help);
        let (vec, collector): (FamilyVec, Box<dyn Collector>) = match kind {
            Kind::Counter => {
                let vec = IntCounterVec::new(opts, &names).ok()?;
                (FamilyVec::Counter(vec.clone()), Box::new(vec))
            }
            Kind::Gauge => {
                let vec = GaugeVec::new(opts, &names).ok()?;
                (FamilyVec::Gauge(vec.clone()), Box::new(vec))
            }
            Kind::Histogram => {
                let opts = HistogramOpts::from(opts).buckets(buckets.to_vec());
                let vec = HistogramVec::new(opts, &names).ok()?;
                (FamilyVec::Histogram(vec.clone()), Box::new(vec))
            }
        };
        // Fails for a name the registry already holds: a kit metric, or another recorder's.
        self.inner.registry.register(collector).ok()?;
        Some(Family {
            kind,
            label_names,
            vec,
        })
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every step leaves the state consistent: a panic elsewhere does not spoil it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Recorder for FacadeRecorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.describe(key, unit, description);
    }

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        self.register(key, Kind::Counter, |vec, values| match vec {
            FamilyVec::Counter(vec) => Some(vec.with_label_values(values)),
            _ => None,
        })
        .map_or_else(Counter::noop, |c| {
            Counter::from_arc(Arc::new(CounterHandle(c, Mutex::new(()))))
        })
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        self.register(key, Kind::Gauge, |vec, values| match vec {
            FamilyVec::Gauge(vec) => Some(vec.with_label_values(values)),
            _ => None,
        })
        .map_or_else(Gauge::noop, |g| Gauge::from_arc(Arc::new(GaugeHandle(g))))
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        self.register(key, Kind::Histogram, |vec, values| match vec {
            FamilyVec::Histogram(vec) => Some(vec.with_label_values(values)),
            _ => None,
        })
        .map_or_else(Histogram::noop, |h| {
            Histogram::from_arc(Arc::new(HistogramHandle(h)))
        })
    }
}

/// A counter; `absolute` reads and then adds, under a lock so that two at once cannot both
/// add the difference.
struct CounterHandle(prometheus::IntCounter, Mutex<()>);

impl CounterFn for CounterHandle {
    fn increment(&self, value: u64) {
        self.0.inc_by(value);
    }

    fn absolute(&self, value: u64) {
        let _one_at_a_time = self.1.lock().unwrap_or_else(PoisonError::into_inner);
        let now = self.0.get();
        if value > now {
            self.0.inc_by(value - now);
        }
    }
}

struct GaugeHandle(prometheus::Gauge);

impl GaugeFn for GaugeHandle {
    fn increment(&self, value: f64) {
        self.0.add(value);
    }

    fn decrement(&self, value: f64) {
        self.0.sub(value);
    }

    fn set(&self, value: f64) {
        self.0.set(value);
    }
}

struct HistogramHandle(prometheus::Histogram);

impl HistogramFn for HistogramHandle {
    fn record(&self, value: f64) {
        self.0.observe(value);
    }
}

/// `name` as a Prometheus metric name: its unit appended, and `_total` for a counter.
fn exposed_name(name: &str, unit: Option<Unit>, kind: Kind) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    if let Some(unit) = unit.filter(|u| *u != Unit::Count) {
        let suffix = format!("_{}", unit.as_str());
        if !out.ends_with(&suffix) {
            out.push_str(&suffix);
        }
    }
    if kind == Kind::Counter && !out.ends_with("_total") {
        out.push_str("_total");
    }
    out
}

/// `name` as a Prometheus label name.
fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    // Names beginning with `__` are Prometheus's own.
    while out.starts_with("__") {
        out.remove(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_valid_prometheus_names() {
        let cases = [
            ("http.requests", None, Kind::Counter, "http_requests_total"),
            ("requests_total", None, Kind::Counter, "requests_total"),
            (
                "db.query",
                Some(Unit::Seconds),
                Kind::Histogram,
                "db_query_seconds",
            ),
            (
                "db.query.seconds",
                Some(Unit::Seconds),
                Kind::Histogram,
                "db_query_seconds",
            ),
            ("queue-depth", Some(Unit::Count), Kind::Gauge, "queue_depth"),
            ("2xx", None, Kind::Gauge, "_2xx"),
            ("", None, Kind::Gauge, "_"),
            ("ns:sub/ünï", None, Kind::Gauge, "ns:sub__n_"),
            ("sent", Some(Unit::Bytes), Kind::Counter, "sent_bytes_total"),
        ];
        for (name, unit, kind, want) in cases {
            assert_eq!(exposed_name(name, unit, kind), want, "{name}");
        }
    }

    #[test]
    fn label_names_are_made_valid_and_never_reserved() {
        let cases = [
            ("http.method", "http_method"),
            ("__name__", "_name__"),
            ("___x", "_x"),
            ("9lives", "_9lives"),
            ("", "_"),
            ("ok", "ok"),
        ];
        for (name, want) in cases {
            assert_eq!(label_name(name), want, "{name}");
        }
    }
}

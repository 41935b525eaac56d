//! kit-metrics' Prometheus metrics beside the raw `prometheus` crate doing the same, in the same
//! run: a counter add with 2 label values resolved per call, a pre-resolved labelled counter
//! add, and a histogram observe.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use kit_metrics::prometheus::{PrometheusCounter, PrometheusHistogram, Registry};
use kit_metrics::{Counter, Histogram};
use prometheus::{CounterVec, HistogramOpts, HistogramVec, Opts};

fn benches(c: &mut Criterion) {
    let registry = Registry::new();
    let kit_counter = PrometheusCounter::new(&registry, "kit_total", "h", &["method", "success"])
        .expect("a valid counter");
    let kit_histogram = PrometheusHistogram::new(
        &registry,
        "kit_seconds",
        "h",
        &["method"],
        prometheus::DEFAULT_BUCKETS.to_vec(),
    )
    .expect("a valid histogram");
    let raw_counter =
        CounterVec::new(Opts::new("raw_total", "h"), &["method", "success"]).expect("a counter");
    let raw_histogram = HistogramVec::new(HistogramOpts::new("raw_seconds", "h"), &["method"])
        .expect("a histogram");

    let mut g = c.benchmark_group("prometheus");
    g.bench_function("counter_with_labels_per_call/kit", |b| {
        b.iter(|| {
            if let Ok(c) = kit_counter.with(black_box(&["sum", "true"])) {
                c.add(1.0);
            }
        })
    });
    g.bench_function("counter_with_labels_per_call/raw", |b| {
        b.iter(|| {
            raw_counter
                .with_label_values(black_box(&["sum", "true"]))
                .inc_by(1.0)
        })
    });
    let kit_resolved = kit_counter.with(&["sum", "true"]).expect("labels");
    let raw_resolved = raw_counter.with_label_values(&["sum", "true"]);
    g.bench_function("counter_resolved/kit", |b| {
        b.iter(|| kit_resolved.add(black_box(1.0)))
    });
    g.bench_function("counter_resolved/raw", |b| {
        b.iter(|| raw_resolved.inc_by(black_box(1.0)))
    });
    let kit_h = kit_histogram.with(&["sum"]).expect("labels");
    let raw_h = raw_histogram.with_label_values(&["sum"]);
    g.bench_function("histogram_observe/kit", |b| {
        b.iter(|| kit_h.observe(black_box(0.042)))
    });
    g.bench_function("histogram_observe/raw", |b| {
        b.iter(|| raw_h.observe(black_box(0.042)))
    });
    g.finish();
}

criterion_group!(prometheus_benches, benches);
criterion_main!(prometheus_benches);

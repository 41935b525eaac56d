//! The `metrics` facade's recorder: what a library records through `metrics::counter!`,
//! `gauge!` and `histogram!` lands in the Prometheus registry beside kit's own metrics, under
//! names and labels that `promtool check metrics` accepts; what Prometheus cannot take is
//! counted, not recorded.
#![cfg(feature = "facade")]

mod support;

use kit_metrics::Counter as _;
use kit_metrics::facade::FacadeRecorder;
use kit_metrics::prometheus::{PrometheusCounter, Registry, text};
use metrics::Unit;

/// Fails the test unless promtool accepts `exposition` (skips without promtool, outside CI).
fn promtool_accepts(exposition: &str) {
    let Some(promtool) = support::require("promtool") else {
        return;
    };
    let out = support::promtool_check(&promtool, exposition.as_bytes());
    assert!(
        out.status.success(),
        "promtool: {}\n{}{}\n{exposition}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn has(exposition: &str, line: &str) {
    assert!(
        exposition.lines().any(|l| l == line),
        "no line {line:?} in\n{exposition}"
    );
}

#[test]
fn what_libraries_record_through_the_facade_is_on_the_same_exposition_as_kit_metrics() {
    let registry = Registry::new();
    let served = PrometheusCounter::new(&registry, "kit_requests_total", "Requests.", &[]).unwrap();
    served.add(7.0);
    let recorder = FacadeRecorder::new(&registry);
    metrics::with_local_recorder(&recorder, || {
        metrics::describe_histogram!("db.query", Unit::Seconds, "Query time.");
        metrics::describe_counter!("http.requests", "Requests made.");
        // The order of a call's labels does not matter.
        metrics::counter!("http.requests", "method" => "GET", "status" => "200").increment(2);
        metrics::counter!("http.requests", "status" => "200", "method" => "GET").increment(1);
        metrics::counter!("http.requests", "method" => "POST", "status" => "503").increment(1);
        let pool = metrics::gauge!("pool.size");
        pool.set(4.0);
        pool.increment(1.5);
        pool.decrement(2.5);
        metrics::histogram!("db.query", "table" => "users").record(0.02);
        metrics::histogram!("db.query", "table" => "users").record(3.0);
        // Label names made valid; odd label values escaped.
        metrics::counter!("odd", "label.key" => "say \"hi\"\nback\\slash").increment(1);
        // `absolute` raises, never lowers.
        let total = metrics::counter!("bytes.seen");
        total.absolute(10);
        total.absolute(5);
        assert_eq!(total_of(&registry, "bytes_seen_total"), 10.0);
        total.absolute(12);
    });
    let exposition = text(&registry);
    has(&exposition, "kit_requests_total 7");
    has(&exposition, "# HELP http_requests_total Requests made.");
    has(&exposition, "# TYPE http_requests_total counter");
    has(
        &exposition,
        r#"http_requests_total{method="GET",status="200"} 3"#,
    );
    has(
        &exposition,
        r#"http_requests_total{method="POST",status="503"} 1"#,
    );
    has(&exposition, "# HELP pool_size pool_size");
    has(&exposition, "pool_size 3");
    has(&exposition, "# HELP db_query_seconds Query time.");
    has(&exposition, "# TYPE db_query_seconds histogram");
    has(&exposition, r#"db_query_seconds_count{table="users"} 2"#);
    has(&exposition, r#"db_query_seconds_sum{table="users"} 3.02"#);
    has(
        &exposition,
        r#"db_query_seconds_bucket{table="users",le="0.025"} 1"#,
    );
    has(
        &exposition,
        r#"odd_total{label_key="say \"hi\"\nback\\slash"} 1"#,
    );
    has(&exposition, "bytes_seen_total 12");
    promtool_accepts(&exposition);
}

/// The value of the single series of `name` in `registry`.
fn total_of(registry: &Registry, name: &str) -> f64 {
    let exposition = text(registry);
    let line = exposition
        .lines()
        .find(|l| l.starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in\n{exposition}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn registrations_prometheus_cannot_take_are_counted_and_change_nothing() {
    let registry = Registry::new();
    let _kit = PrometheusCounter::new(&registry, "kit_requests_total", "Requests.", &[]).unwrap();
    let recorder = FacadeRecorder::new(&registry);
    metrics::with_local_recorder(&recorder, || {
        metrics::counter!("jobs", "queue" => "a").increment(1);
        // Other label names under the same name.
        metrics::counter!("jobs", "queue" => "a", "shard" => "1").increment(100);
        metrics::counter!("jobs").increment(100);
        // Another kind under the same exposed name.
        metrics::gauge!("jobs_total").set(100.0);
        // A name a kit metric holds.
        metrics::counter!("kit_requests").increment(100);
    });
    let exposition = text(&registry);
    has(&exposition, r#"jobs_total{queue="a"} 1"#);
    has(&exposition, "kit_requests_total 0");
    has(
        &exposition,
        r#"kit_metrics_facade_rejected_total{name="jobs_total"} 3"#,
    );
    has(
        &exposition,
        r#"kit_metrics_facade_rejected_total{name="kit_requests_total"} 1"#,
    );
    promtool_accepts(&exposition);
}

#[test]
fn past_the_series_cap_new_series_are_rejected_and_old_ones_go_on() {
    let registry = Registry::new();
    let recorder = FacadeRecorder::new(&registry).max_series(3);
    metrics::with_local_recorder(&recorder, || {
        for id in 0..6 {
            metrics::counter!("calls", "id" => id.to_string()).increment(1);
        }
        metrics::counter!("calls", "id" => "0").increment(1);
        // Past the cap a new name makes no family either, and the refusals' own series stop
        // at 100 names.
        for n in 0..150 {
            metrics::counter!(format!("made_up_{n}")).increment(1);
        }
    });
    let exposition = text(&registry);
    has(&exposition, r#"calls_total{id="0"} 2"#);
    has(&exposition, r#"calls_total{id="2"} 1"#);
    assert!(
        !exposition.contains(r#"calls_total{id="3"}"#),
        "{exposition}"
    );
    has(
        &exposition,
        r#"kit_metrics_facade_rejected_total{name="calls_total"} 3"#,
    );
    assert!(!exposition.contains("# TYPE made_up_"), "{exposition}");
    has(
        &exposition,
        r#"kit_metrics_facade_rejected_total{name="made_up_0_total"} 1"#,
    );
    has(
        &exposition,
        r#"kit_metrics_facade_rejected_total{name="_other"} 51"#,
    );
    promtool_accepts(&exposition);
}

#[test]
fn histograms_take_the_recorders_buckets() {
    let registry = Registry::new();
    let recorder = FacadeRecorder::new(&registry).buckets(vec![0.1, 1.0]);
    metrics::with_local_recorder(&recorder, || {
        metrics::histogram!("size").record(0.5);
    });
    let exposition = text(&registry);
    has(&exposition, r#"size_bucket{le="0.1"} 0"#);
    has(&exposition, r#"size_bucket{le="1"} 1"#);
    has(&exposition, r#"size_bucket{le="+Inf"} 1"#);
    promtool_accepts(&exposition);
}

#[test]
#[should_panic(expected = "one facade recorder per registry")]
fn a_second_recorder_on_one_registry_is_refused() {
    let registry = Registry::new();
    let _first = FacadeRecorder::new(&registry);
    let _second = FacadeRecorder::new(&registry);
}

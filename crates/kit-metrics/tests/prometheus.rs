//! The Prometheus backend against the real thing: `promtool check metrics` accepts the
//! exposition of every metric kind with hostile label values and non-finite values, and a real
//! Prometheus server scrapes a test endpoint and answers a query with the value.
#![cfg(feature = "prometheus")]

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kit_metrics::prometheus::{
    PrometheusCounter, PrometheusGauge, PrometheusHandler, PrometheusHistogram, Registry, text,
};
use kit_metrics::{Counter, Gauge, Histogram, MetricError};

/// Label values that break naive writers: quotes, newlines, backslashes, braces, unicode.
const ODD: [&str; 5] = [
    "say \"hi\"",
    "two\nlines",
    "back\\slash",
    "{a=b,c}",
    "ünï ✓",
];

fn every_kind(registry: &Registry) {
    let counter = PrometheusCounter::new(
        registry,
        "kit_requests_total",
        "Requests.",
        &["method", "note"],
    )
    .unwrap();
    let gauge = PrometheusGauge::new(registry, "kit_in_flight", "In flight.", &["method"]).unwrap();
    let histogram = PrometheusHistogram::new(
        registry,
        "kit_request_duration_seconds",
        "Durations.",
        &["method"],
        vec![0.01, 0.1, 1.0],
    )
    .unwrap();
    let plain = PrometheusCounter::new(registry, "kit_plain_total", "No labels.", &[]).unwrap();
    for odd in ODD {
        counter.with(&["sum", odd]).unwrap().add(2.0);
        gauge.with(&[odd]).unwrap().set(-1.5);
        histogram.with(&[odd]).unwrap().observe(0.05);
    }
    plain.add(1.0);
    // Non-finite values, as the format defines them.
    gauge.with(&["nan"]).unwrap().set(f64::NAN);
    gauge.with(&["inf"]).unwrap().set(f64::INFINITY);
    gauge.with(&["-inf"]).unwrap().set(f64::NEG_INFINITY);
    histogram.with(&["inf"]).unwrap().observe(f64::INFINITY);
    counter.with(&["inf", ""]).unwrap().add(f64::INFINITY);
}

#[test]
fn promtool_accepts_the_exposition_of_every_kind_with_odd_label_values() {
    let Some(promtool) = support::require("promtool") else {
        return;
    };
    let registry = Registry::new();
    every_kind(&registry);
    let exposition = text(&registry);
    assert!(exposition.contains(r#"note="say \"hi\"""#), "{exposition}");
    assert!(exposition.contains(r#"note="two\nlines""#), "{exposition}");
    assert!(exposition.contains(r#"note="back\\slash""#), "{exposition}");
    assert!(
        exposition.contains("kit_in_flight{method=\"nan\"} NaN"),
        "{exposition}"
    );
    assert!(
        exposition.contains("kit_in_flight{method=\"inf\"} +Inf"),
        "{exposition}"
    );
    assert!(
        exposition.contains("kit_in_flight{method=\"-inf\"} -Inf"),
        "{exposition}"
    );

    let out = support::promtool_check(&promtool, exposition.as_bytes());
    assert!(
        out.status.success(),
        "promtool: {}\n{}\n{exposition}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // And promtool is not a rubber stamp: a broken line fails.
    let broken = support::promtool_check(&promtool, b"kit_broken{a=\"unterminated} 1\n");
    assert!(!broken.status.success());
}

#[test]
fn names_labels_and_arity_are_checked_when_metrics_are_made_and_labelled() {
    let registry = Registry::new();
    let bad_names = ["", "1abc", "has space", "dash-ed", "ünï"];
    for name in bad_names {
        let err = PrometheusCounter::new(&registry, name, "h", &[]).unwrap_err();
        assert!(
            matches!(err, MetricError::InvalidName { .. }),
            "{name:?}: {err}"
        );
    }
    for labels in [&["__reserved"][..], &["a", "a"], &["1x"], &["x-y"]] {
        let err = PrometheusGauge::new(&registry, "kit_g", "h", labels).unwrap_err();
        assert!(
            matches!(err, MetricError::InvalidName { .. }),
            "{labels:?}: {err}"
        );
    }
    let counter = PrometheusCounter::new(&registry, "kit_c_total", "h", &["a", "b"]).unwrap();
    let err = counter.with(&["only one"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "metric \"kit_c_total\" has 2 label names but was given 1 label values"
    );
    assert!(counter.with(&["1", "2", "3"]).is_err());
    let labelled = counter.with(&["1", "2"]).unwrap();
    assert_eq!(
        labelled.with(&["1", "2"]).unwrap_err(),
        MetricError::AlreadyLabelled {
            metric: "kit_c_total".into()
        }
    );
    // The same name twice in one registry is refused, with the registry's reason.
    let again = PrometheusCounter::new(&registry, "kit_c_total", "h", &["a", "b"]).unwrap_err();
    assert!(matches!(again, MetricError::Backend(_)), "{again}");
}

#[test]
fn counters_ignore_nan_and_negative_deltas_and_unlabelled_use_goes_to_unknown() {
    let registry = Registry::new();
    let counter = PrometheusCounter::new(&registry, "kit_n_total", "h", &["m"]).unwrap();
    let sum = counter.with(&["sum"]).unwrap();
    sum.add(1.5);
    sum.add(f64::NAN);
    sum.add(-3.0);
    sum.add(0.5);
    counter.add(4.0);
    let gauge = PrometheusGauge::new(&registry, "kit_gg", "h", &[]).unwrap();
    gauge.set(3.0);
    gauge.add(-5.0);
    let exposition = text(&registry);
    assert!(
        exposition.contains("kit_n_total{m=\"sum\"} 2\n"),
        "{exposition}"
    );
    assert!(
        exposition.contains("kit_n_total{m=\"unknown\"} 4\n"),
        "{exposition}"
    );
    assert!(exposition.contains("kit_gg -2\n"), "{exposition}");
}

/// Waits for Prometheus to answer `query` with a sample, and returns the sample's value.
async fn query_value(api: &str, query: &str, deadline: Duration) -> Option<String> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        let url = format!("{api}/api/v1/query?query={query}");
        if let Some(body) = http_get(&url).await {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if let Some(value) = v["data"]["result"][0]["value"][1].as_str() {
                return Some(value.to_owned());
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    None
}

/// A plain HTTP/1.1 GET over TCP (the test's own client: no HTTP client crate needed).
async fn http_get(url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/')?;
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_handler_and_answers_a_query() {
    let Some(prometheus) = support::require("prometheus") else {
        return;
    };
    let registry = Registry::new();
    let counter = PrometheusCounter::new(
        &registry,
        "kit_e2e_total",
        "Scraped by a real Prometheus.",
        &["method"],
    )
    .unwrap();
    counter.with(&["sum"]).unwrap().add(42.0);
    let target = support::serve(PrometheusHandler::new(registry)).await;

    let dir = std::env::temp_dir().join(format!("kit-metrics-prom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: kit\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg("--log.level=warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let api = format!("http://127.0.0.1:{port}");
    let value = query_value(&api, "kit_e2e_total", Duration::from_secs(30)).await;
    let labels = http_get(&format!("{api}/api/v1/series?match[]=kit_e2e_total")).await;
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        value.as_deref(),
        Some("42"),
        "no sample scraped within 30 s"
    );
    assert!(labels.unwrap_or_default().contains("\"method\":\"sum\""));
}

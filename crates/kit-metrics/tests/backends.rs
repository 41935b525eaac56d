//! The in-memory, discard and multi backends, the timer, and the instrumenting middleware.

use kit_core::{Chain, Context, Endpoint, Error, Middleware, endpoint_fn};
use kit_metrics::discard::Discard;
use kit_metrics::memory::{MemoryCounter, MemoryGauge, MemoryHistogram};
use kit_metrics::{
    Counter, Gauge, Histogram, METHOD_OUTCOME_LABELS, MetricError, Metrics, Multi, Timer,
};

#[test]
fn memory_metrics_keep_every_series() {
    let c = MemoryCounter::new("c_total", &["m"]).unwrap();
    c.with(&["a"]).unwrap().add(1.0);
    c.with(&["a"]).unwrap().add(2.5);
    c.with(&["b"]).unwrap().add(f64::NAN);
    c.with(&["b"]).unwrap().add(-1.0);
    assert_eq!((c.value(&["a"]), c.value(&["b"])), (3.5, 0.0));

    let g = MemoryGauge::new("g", &[]).unwrap();
    g.set(5.0);
    g.add(-7.5);
    assert_eq!(g.value(&[]), -2.5);
    g.set(f64::NAN);
    assert!(g.value(&[]).is_nan());

    let h = MemoryHistogram::new("h", &["m"]).unwrap();
    let hm = h.with(&["x"]).unwrap();
    for v in [5.0, 1.0, 4.0, 2.0, 3.0] {
        hm.observe(v);
    }
    assert_eq!(h.observations(&["x"]), [5.0, 1.0, 4.0, 2.0, 3.0]);
    assert_eq!(h.quantile(&["x"], 0.5), Some(3.0));
    assert_eq!(h.quantile(&["x"], 0.99), Some(5.0));
    assert_eq!(h.quantile(&["x"], 0.0), Some(1.0));
    assert_eq!(h.quantile(&["y"], 0.5), None);
    assert_eq!(h.quantile(&["x"], 1.5), None);
}

#[test]
fn memory_metrics_check_names_and_arity() {
    assert!(matches!(
        MemoryCounter::new("bad name", &[]),
        Err(MetricError::InvalidName { .. })
    ));
    let c = MemoryCounter::new("ok_total", &["a", "b"]).unwrap();
    assert_eq!(
        c.with(&["x"]).unwrap_err(),
        MetricError::LabelArity {
            metric: "ok_total".into(),
            expected: 2,
            got: 1
        }
    );
    let labelled = c.with(&["x", "y"]).unwrap();
    assert_eq!(
        labelled.with(&["x", "y"]).unwrap_err().to_string(),
        "metric \"ok_total\" is already labelled: call with() on the metric as it was made"
    );
}

#[test]
fn multi_updates_both_and_discard_accepts_anything() {
    let (a, b) = (
        MemoryHistogram::new("a", &["m"]).unwrap(),
        MemoryHistogram::new("b", &["m"]).unwrap(),
    );
    let both = Multi(a.clone(), Multi(b.clone(), Discard));
    both.with(&["sum"]).unwrap().observe(0.25);
    assert_eq!(a.observations(&["sum"]), [0.25]);
    assert_eq!(b.observations(&["sum"]), [0.25]);
    // Either side refusing the labels refuses them.
    let mismatched = Multi(a, MemoryHistogram::new("c", &[]).unwrap());
    assert!(mismatched.with(&["sum"]).is_err());
    Counter::add(&Counter::with(&Discard, &["any", "number"]).unwrap(), 1.0);
}

#[test]
fn the_timer_observes_seconds() {
    let h = MemoryHistogram::new("t_seconds", &[]).unwrap();
    let timer = Timer::start(h.clone());
    std::thread::sleep(std::time::Duration::from_millis(20));
    let seconds = timer.observe_duration();
    assert!(seconds >= 0.02, "{seconds}");
    assert_eq!(h.observations(&[]), [seconds]);
}

#[tokio::test]
async fn the_middleware_counts_and_times_calls_by_method_and_outcome() {
    let requests = MemoryCounter::new("requests_total", &METHOD_OUTCOME_LABELS).unwrap();
    let durations =
        MemoryHistogram::new("request_duration_seconds", &METHOD_OUTCOME_LABELS).unwrap();
    let sum = Chain::new()
        .with(Metrics::new("sum", requests.clone(), durations.clone()).unwrap())
        .wrap(endpoint_fn(|_cx, (a, b): (i64, i64)| async move {
            match (a, b) {
                (0, 0) => Err(Error::business("can't sum two zeroes")),
                (_, i64::MAX) => Err(Error::unavailable("backend down")),
                _ => Ok(a + b),
            }
        }));
    for args in [(1, 2), (3, 4), (0, 0), (1, i64::MAX)] {
        let _ = sum.call(Context::new(), args).await;
    }
    assert_eq!(requests.value(&["sum", "true", "success"]), 2.0);
    assert_eq!(requests.value(&["sum", "false", "rejected"]), 1.0);
    assert_eq!(requests.value(&["sum", "false", "failure"]), 1.0);
    assert_eq!(durations.observations(&["sum", "true", "success"]).len(), 2);
    assert!(durations.observations(&["sum", "false", "failure"])[0] >= 0.0);

    // Metrics declared with other labels are refused when the middleware is made.
    let wrong = MemoryCounter::new("wrong_total", &["method"]).unwrap();
    let err = Metrics::new("sum", wrong, durations).unwrap_err();
    assert!(
        matches!(
            err,
            MetricError::LabelArity {
                expected: 1,
                got: 3,
                ..
            }
        ),
        "{err}"
    );
}

/// A go-kit-style reply that carries its business error (the same reply every middleware's
/// carried-error test uses).
struct SumReply {
    v: i64,
    err: Option<String>,
}

impl kit_core::Failer for SumReply {
    fn failed(&self) -> Option<Error> {
        self.err.clone().map(Error::business)
    }
}

#[tokio::test]
async fn a_business_error_carried_in_a_reply_counts_as_rejected() {
    let requests = MemoryCounter::new("requests_total", &METHOD_OUTCOME_LABELS).unwrap();
    let durations =
        MemoryHistogram::new("request_duration_seconds", &METHOD_OUTCOME_LABELS).unwrap();
    let sum = Chain::new()
        .with(Metrics::new("sum", requests.clone(), durations).unwrap())
        .wrap(kit_core::Failing::new(endpoint_fn(
            |_cx, (a, b): (i64, i64)| async move {
                Ok::<_, Error>(match (a, b) {
                    (0, 0) => SumReply {
                        v: 0,
                        err: Some("can't sum two zeroes".into()),
                    },
                    _ => SumReply {
                        v: a + b,
                        err: None,
                    },
                })
            },
        )));
    assert_eq!(sum.call(Context::new(), (1, 2)).await.unwrap().v, 3);
    let reply = sum.call(Context::new(), (0, 0)).await.unwrap();
    assert_eq!(reply.err.as_deref(), Some("can't sum two zeroes"));
    assert_eq!(requests.value(&["sum", "true", "success"]), 1.0);
    assert_eq!(requests.value(&["sum", "false", "rejected"]), 1.0);
    assert_eq!(requests.value(&["sum", "false", "failure"]), 0.0);
}

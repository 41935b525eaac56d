//! The run group, the server stack and the debug handler, each against real things: tasks on a
//! runtime, real endpoints and metrics, a real HTTP listener on loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kit_core::deadline::DeadlineEndpoint;
use kit_core::{Context, Endpoint, Error, ErrorKind, endpoint_fn};
use kit_metrics::METHOD_OUTCOME_LABELS;
use kit_metrics::memory::{MemoryCounter, MemoryHistogram};
use kit_server::{DebugHandler, Group, RunError, ServerStack};

#[tokio::test]
async fn the_first_failure_stops_every_task_and_is_the_answer() {
    let mut group = Group::new();
    let stopped = Arc::new(AtomicUsize::new(0));
    for name in ["a", "b"] {
        let stopping = group.stopping();
        let stopped = Arc::clone(&stopped);
        group.spawn(name, async move {
            stopping.wait().await;
            stopped.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Error>(())
        });
    }
    group.spawn("broken", async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        Err(Error::internal("port gone"))
    });
    let health = group.health();
    assert!(health.is_ready());
    match group.run().await {
        Err(RunError::Task { name, error }) => {
            assert_eq!(name, "broken");
            assert_eq!(error.to_string(), "port gone");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        stopped.load(Ordering::SeqCst),
        2,
        "every other task was stopped"
    );
    assert!(!health.is_ready(), "not ready once the drain started");
}

#[tokio::test]
async fn a_task_that_returns_ok_stops_the_group_cleanly_and_a_panic_is_a_failure() {
    let mut group = Group::new();
    let stopping = group.stopping();
    group.spawn("server", async move {
        stopping.wait().await;
        Ok::<_, Error>(())
    });
    group.spawn("done", async { Ok::<_, Error>(()) });
    group.run().await.unwrap();

    let mut group = Group::new();
    group.spawn("panics", async {
        if true {
            panic!("boom");
        }
        Ok::<_, Error>(())
    });
    let err = group.run().await.unwrap_err();
    assert!(err.to_string().starts_with("panics: panicked"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_drain_that_outlasts_its_deadline_names_the_tasks_still_running() {
    let mut group = Group::new().drain_deadline(Duration::from_secs(5));
    group.spawn("stubborn", async {
        std::future::pending::<()>().await;
        Ok::<_, Error>(())
    });
    let stopping = group.stopping();
    group.spawn("polite", async move {
        stopping.wait().await;
        Ok::<_, Error>(())
    });
    group.stop();
    match group.run().await {
        Err(RunError::DrainTimeout {
            still_running,
            deadline,
        }) => {
            assert_eq!(still_running, ["stubborn"]);
            assert_eq!(deadline, Duration::from_secs(5));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn observers_run_through_the_drain_and_stop_when_it_is_done() {
    let mut group = Group::new();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stopping = group.stopping();
    let log = tx.clone();
    group.spawn("server", async move {
        stopping.wait().await;
        log.send("server draining").unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        log.send("server done").unwrap();
        Ok::<_, Error>(())
    });
    let (drained, stopping) = (group.drained(), group.stopping());
    let health = group.health();
    group.spawn_observer("debug", async move {
        stopping.wait().await;
        tx.send(if health.is_ready() {
            "observer sees ready"
        } else {
            "observer sees not ready"
        })
        .unwrap();
        drained.wait().await;
        tx.send("observer done").unwrap();
        Ok::<_, Error>(())
    });
    group.stop();
    group.run().await.unwrap();
    let mut seen = Vec::new();
    while let Ok(line) = rx.try_recv() {
        seen.push(line);
    }
    let position = |s: &str| seen.iter().position(|l| *l == s).unwrap();
    assert!(
        position("server done") < position("observer done"),
        "{seen:?}"
    );
    assert!(seen.contains(&"observer sees not ready"), "{seen:?}");
}

fn metrics() -> (MemoryCounter, MemoryHistogram) {
    (
        MemoryCounter::new("requests_total", &METHOD_OUTCOME_LABELS).unwrap(),
        MemoryHistogram::new("request_duration_seconds", &METHOD_OUTCOME_LABELS).unwrap(),
    )
}

#[tokio::test]
async fn the_stack_refuses_calls_over_the_limit_and_counts_them() {
    let (requests, durations) = metrics();
    let release = Arc::new(tokio::sync::Notify::new());
    let slow = {
        let release = Arc::clone(&release);
        endpoint_fn(move |_cx: Context, n: u32| {
            let release = Arc::clone(&release);
            async move {
                release.notified().await;
                Ok::<_, Error>(n)
            }
        })
    };
    let ep = ServerStack::new("slow")
        .metrics(requests.clone(), durations)
        .unwrap()
        .concurrency_limit(2)
        .wrap(slow);
    let first = tokio::spawn({
        let ep = ep.clone();
        async move { ep.call(Context::new(), 1).await }
    });
    let second = tokio::spawn({
        let ep = ep.clone();
        async move { ep.call(Context::new(), 2).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = ep.call(Context::new(), 3).await.unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Overloaded);
    assert_eq!(refused.message(), "more than 2 calls in flight");
    release.notify_waiters();
    assert_eq!(first.await.unwrap().unwrap(), 1);
    assert_eq!(second.await.unwrap().unwrap(), 2);
    // The permits came back.
    let again = tokio::spawn({
        let ep = ep.clone();
        async move { ep.call(Context::new(), 4).await }
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    release.notify_waiters();
    assert_eq!(again.await.unwrap().unwrap(), 4);
    assert_eq!(requests.value(&["slow", "true", "success"]), 3.0);
    assert_eq!(requests.value(&["slow", "false", "failure"]), 1.0);
}

#[tokio::test]
async fn the_stack_times_out_and_added_middleware_sit_between_metrics_and_the_timeout() {
    let (requests, durations) = metrics();
    let seen_deadline = Arc::new(AtomicUsize::new(0));
    // A middleware that refuses odd numbers: the metrics above it count its refusals; the
    // timeout below it gives the endpoint its deadline.
    let odd_refuser = |next: kit_core::BoxEndpoint<u64, u64>| {
        kit_core::BoxEndpoint::new(endpoint_fn(move |cx: Context, n: u64| {
            let next = next.clone();
            async move {
                if n % 2 == 1 {
                    return Err(Error::invalid_argument("odd"));
                }
                next.call(cx, n).await
            }
        }))
    };
    let inner = {
        let seen_deadline = Arc::clone(&seen_deadline);
        endpoint_fn(move |cx: Context, n: u64| {
            if cx.remaining().is_some() {
                seen_deadline.fetch_add(1, Ordering::SeqCst);
            }
            async move {
                tokio::time::sleep(Duration::from_millis(n)).await;
                Ok::<_, Error>(n)
            }
        })
    };
    let ep = ServerStack::new("sleep")
        .metrics(requests.clone(), durations)
        .unwrap()
        // A go-kit-style middleware over boxed endpoints is given the endpoint below, boxed.
        .with(|next: DeadlineEndpoint<_>| odd_refuser(kit_core::BoxEndpoint::new(next)))
        .timeout(Duration::from_millis(100))
        .wrap(inner);
    assert_eq!(ep.call(Context::new(), 2).await.unwrap(), 2);
    assert_eq!(
        ep.call(Context::new(), 3).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        ep.call(Context::new(), 400).await.unwrap_err().kind(),
        ErrorKind::Timeout
    );
    assert_eq!(seen_deadline.load(Ordering::SeqCst), 2);
    assert_eq!(requests.value(&["sleep", "true", "success"]), 1.0);
    assert_eq!(requests.value(&["sleep", "false", "rejected"]), 1.0);
}

#[tokio::test]
async fn the_debug_handler_serves_health_and_metrics_over_http() {
    use kit_metrics::Counter;
    use kit_metrics::prometheus::{PrometheusCounter, Registry};
    let registry = Registry::new();
    let counter = PrometheusCounter::new(&registry, "kit_debug_total", "Calls.", &[]).unwrap();
    counter.add(7.0);
    let health = kit_server::Health::new();
    let listener = kit_transport_http::Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    tokio::spawn(listener.serve(
        DebugHandler::new(health.clone()).metrics(registry),
        std::future::pending(),
    ));
    let get = |method: &'static str, path: &'static str| async move {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(
                format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let status: u16 = raw[9..12].parse().unwrap();
        (status, raw.split_once("\r\n\r\n").unwrap().1.to_owned())
    };
    assert_eq!(get("GET", "/healthz").await, (200, "ok\n".into()));
    assert_eq!(get("GET", "/readyz").await, (200, "ready\n".into()));
    let (status, metrics) = get("GET", "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("kit_debug_total 7\n"), "{metrics}");
    assert_eq!(get("GET", "/nope").await.0, 404);
    assert_eq!(get("POST", "/readyz").await.0, 405);

    health.set_ready(false).await;
    assert_eq!(get("GET", "/readyz").await, (503, "not ready\n".into()));
    assert_eq!(get("GET", "/healthz").await.0, 200, "still live");
}

#[tokio::test]
async fn an_empty_group_returns_at_once_and_readiness_stays_off_once_draining() {
    Group::new().run().await.unwrap();

    let mut group = Group::new();
    let health = group.health();
    let stopping = group.stopping();
    let (tx, rx) = tokio::sync::oneshot::channel();
    group.spawn("server", {
        let health = health.clone();
        async move {
            stopping.wait().await;
            // A late "ready" from the service during the drain is ignored.
            health.set_ready(true).await;
            tx.send(health.is_ready()).unwrap();
            Ok::<_, Error>(())
        }
    });
    group.stop();
    group.run().await.unwrap();
    assert!(!rx.await.unwrap());
}

#[tokio::test]
async fn the_readiness_delay_sits_between_draining_and_stopping() {
    let delay = Duration::from_millis(300);
    let mut group = Group::new().readiness_delay(delay);
    let health = group.health();
    let (draining, stopping) = (group.draining(), group.stopping());
    let seen = {
        let (draining, stopping) = (draining.clone(), stopping.clone());
        let health = health.clone();
        tokio::spawn(async move {
            draining.wait().await;
            let at_draining = (health.is_ready(), stopping.fired());
            let started = tokio::time::Instant::now();
            stopping.wait().await;
            (at_draining, started.elapsed())
        })
    };
    let stop = group.stopping();
    group.spawn("listener", async move {
        stop.wait().await;
        Ok::<_, std::io::Error>(())
    });
    group.stop();
    group.run().await.unwrap();
    let ((ready, stopped), waited) = seen.await.unwrap();
    // Not ready and not yet stopping when the drain starts; stopping the delay later.
    assert!(!ready && !stopped);
    assert!(waited >= delay, "{waited:?}");
}

#[tokio::test]
async fn the_group_derives_its_deadline_from_the_listeners_it_serves() {
    let bind = || async {
        kit_transport_http::Listener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    };
    assert_eq!(Group::new().deadline(), Duration::from_secs(30));
    let mut group = Group::new();
    let health = group.health();
    group.serve_http(
        "HTTP",
        bind().await.drain_timeout(Duration::from_millis(300)),
        DebugHandler::new(health.clone()),
    );
    group.serve_http_observer(
        "debug",
        bind().await.drain_timeout(Duration::from_millis(200)),
        DebugHandler::new(health),
    );
    // The longest listener drain, and a second for the listener to report its own timeout.
    assert_eq!(group.deadline(), Duration::from_millis(1300));
    assert_eq!(
        Group::new()
            .drain_deadline(Duration::from_secs(5))
            .deadline(),
        Duration::from_secs(5)
    );

    // A task that never returns is given the derived deadline, not the 30 s default.
    group.spawn("stubborn", async {
        std::future::pending::<()>().await;
        Ok::<_, Error>(())
    });
    group.stop();
    match tokio::time::timeout(Duration::from_secs(10), group.run())
        .await
        .expect("the derived deadline ends the drain")
    {
        Err(RunError::DrainTimeout {
            still_running,
            deadline,
        }) => {
            assert_eq!(still_running, ["stubborn"]);
            assert_eq!(deadline, Duration::from_millis(1300));
        }
        other => panic!("{other:?}"),
    }
}

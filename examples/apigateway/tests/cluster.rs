//! A real small cluster on loopback: etcd, three addsvc processes that register in it, and the
//! gateway that discovers them, under a steady stream of calls. One addsvc is killed with
//! SIGKILL and started again, etcd is stopped and started again, and every process is stopped
//! with SIGTERM at the end; not one call may fail. Also: one trace across the gateway and an
//! instance.

#[path = "../../addsvc/tests/support/mod.rs"]
mod addsvc_support;
#[path = "../../../crates/kit-sd/tests/support/etcd.rs"]
mod etcd_server;
mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use addsvc_support::{Running, collector, http, post, start_bin, wait_exit};
use etcd_server::Etcd;
use support::{Gateway, addsvc_bin, gateway, sigterm};

/// The value of the first metric line starting with `name` on a debug port.
fn metric(debug: SocketAddr, name: &str) -> Option<f64> {
    let (_, body) = http(debug, "GET", "/metrics", b"");
    body.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits until the gateway knows `n` addsvc instances; how long it took.
fn knows(gateway: &Gateway, n: f64, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if metric(gateway.debug, "apigateway_instances{service=\"addsvc\"}") == Some(n) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "the gateway knows {:?} addsvc, not {n}",
            metric(gateway.debug, "apigateway_instances{service=\"addsvc\"}")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Calls through the gateway on a thread, one after another, until stopped.
struct Stream {
    running: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<(u16, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Stream {
    fn start(gateway: SocketAddr) -> Stream {
        let running = Arc::new(AtomicBool::new(true));
        let sent = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let (r, s, f) = (running.clone(), sent.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            let mut n: i64 = 1;
            while r.load(Ordering::SeqCst) {
                let answer = post(gateway, "/addsvc/sum", &format!(r#"{{"a":{n},"b":1}}"#));
                s.fetch_add(1, Ordering::SeqCst);
                if answer != (200, format!(r#"{{"v":{}}}"#, n + 1)) {
                    f.lock().unwrap().push(answer);
                }
                n = n % 1_000_000 + 1;
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Stream {
            running,
            sent,
            failed,
            thread: Some(thread),
        }
    }

    fn sent(&self) -> usize {
        self.sent.load(Ordering::SeqCst)
    }

    fn stop(mut self) -> (usize, Vec<(u16, String)>) {
        self.running.store(false, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (self.sent(), self.failed.lock().unwrap().clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_survives_a_dead_instance_and_an_etcd_restart_without_a_failed_call() {
    let Some(mut etcd) = Etcd::start().await else {
        return;
    };
    let addsvc = addsvc_bin();
    let endpoint = etcd.endpoint();
    let register = ["-etcd-addr", endpoint.as_str(), "-etcd-ttl", "2s"];
    let mut instances: Vec<Running> = (0..3).map(|_| start_bin(&addsvc, &register)).collect();
    let gw = gateway(&["-etcd-addr", &endpoint]);
    let took = knows(&gw, 3.0, Duration::from_secs(10));
    eprintln!("the gateway saw 3 instances {took:?} after it started");
    let stream = Stream::start(gw.http);
    std::thread::sleep(Duration::from_millis(500));

    // kill -9 one instance: no call fails, and it leaves the set when its lease expires.
    let mut killed = instances.remove(0);
    let _ = killed.child.kill();
    let _ = killed.child.wait();
    let took = knows(&gw, 2.0, Duration::from_secs(10));
    eprintln!("a killed instance left the gateway's set {took:?} after SIGKILL (lease 2 s)");

    // Started again: it registers and gets calls within a few seconds.
    let back = start_bin(&addsvc, &register);
    let took = knows(&gw, 3.0, Duration::from_secs(10));
    let start = Instant::now();
    let served = |svc: &Running| {
        metric(
            svc.debug,
            "example_addsvc_requests_total{method=\"sum\",outcome=\"success\"",
        )
        .unwrap_or(0.0)
    };
    while served(&back) < 1.0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the new instance gets no calls"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "a restarted instance was in the set {took:?} after its start, and served a call {:?} later",
        start.elapsed()
    );
    instances.push(back);

    // etcd stopped for 3 s: the gateway keeps serving from its last set.
    etcd.kill();
    let before = stream.sent();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        stream.sent() > before + 50,
        "calls went on while etcd was down"
    );
    etcd.run().await;
    // Registrations come back (each registrar registers again), and a change made after the
    // restart is seen: one instance stops cleanly and deregisters.
    std::thread::sleep(Duration::from_secs(1));
    let mut leaving = instances.remove(0);
    sigterm(&leaving.child);
    assert_eq!(
        wait_exit(&mut leaving.child, Duration::from_secs(20)).code(),
        Some(0)
    );
    let took = knows(&gw, 2.0, Duration::from_secs(10));
    eprintln!("after etcd's restart, a deregistration reached the gateway in {took:?}");

    let (sent, failed) = stream.stop();
    eprintln!("calls sent {sent}, failed {}", failed.len());
    assert!(sent > 300, "{sent}");
    assert!(failed.is_empty(), "{failed:?}");

    // SIGTERM every process: each drains and exits 0.
    let mut gw = gw;
    sigterm(&gw.child);
    assert_eq!(
        wait_exit(&mut gw.child, Duration::from_secs(20)).code(),
        Some(0)
    );
    for svc in &mut instances {
        sigterm(&svc.child);
        assert_eq!(
            wait_exit(&mut svc.child, Duration::from_secs(20)).code(),
            Some(0)
        );
    }
}

#[test]
fn one_trace_holds_the_gateways_spans_and_the_instances() {
    let (collector, spans) = collector();
    let url = format!("http://{collector}/api/v2/spans");
    let mut svc = start_bin(&addsvc_bin(), &["-zipkin-url", &url]);
    let mut gw = gateway(&["-addsvc", &svc.http.to_string(), "-zipkin-url", &url]);
    assert_eq!(
        post(gw.http, "/addsvc/sum", r#"{"a":1,"b":2}"#),
        (200, r#"{"v":3}"#.to_owned())
    );
    // Spans are flushed when each process drains.
    for child in [&mut gw.child, &mut svc.child] {
        sigterm(child);
        assert_eq!(wait_exit(child, Duration::from_secs(20)).code(), Some(0));
    }
    let mut all = Vec::new();
    while let Ok(body) = spans.recv_timeout(Duration::from_secs(2)) {
        all.extend(body.as_array().unwrap().iter().cloned());
    }
    let find = |service: &str, kind: Option<&str>, name: &str| {
        all.iter()
            .find(|s| {
                s["localEndpoint"]["serviceName"] == service
                    && s["name"] == name
                    // Zipkin leaves the kind out of internal spans.
                    && match kind {
                        Some(k) => s["kind"] == k,
                        None => s.get("kind").is_none(),
                    }
            })
            .unwrap_or_else(|| panic!("no {service} {kind:?} span {name}: {all:#?}"))
            .clone()
    };
    let gw_server = find("apigateway", Some("SERVER"), "post /addsvc/sum");
    let gw_endpoint = find("apigateway", None, "addsvc.sum");
    let gw_client = find("apigateway", Some("CLIENT"), "addsvc.sum");
    let svc_server = find("addsvc", Some("SERVER"), "post /sum");
    let svc_endpoint = find("addsvc", None, "sum");
    let trace = &gw_server["traceId"];
    for span in [&gw_endpoint, &gw_client, &svc_server, &svc_endpoint] {
        assert_eq!(&span["traceId"], trace, "{span}");
    }
    assert_eq!(gw_endpoint["parentId"], gw_server["id"]);
    assert_eq!(gw_client["parentId"], gw_endpoint["id"]);
    assert_eq!(svc_server["parentId"], gw_client["id"]);
    assert_eq!(svc_endpoint["parentId"], svc_server["id"]);
}

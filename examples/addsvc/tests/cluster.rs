//! kit-client end to end: three real addsvc processes on loopback, called over HTTP through a
//! breaker per instance, p2c and retries, while one instance fails in turn: stopped, then
//! answering 500, then slow. The budget is shown at work with every instance failing, and
//! addcli balances over several addresses.

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use addsvc::service::SumRequest;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use kit_client::balance::{Balanced, P2c, RoundRobin};
use kit_client::breaker::{Breaker, State};
use kit_client::retry::{Attempts, Budget, Retry, Stopped};
use kit_core::{
    BoxEndpoint, Context, Endpoint, EndpointSet, Error, FixedEndpointer, Middleware, endpoint_fn,
};
use support::{Running, start_bin};

/// The addsvc binary on free loopback ports, with `extra` flags.
fn start(extra: &[&str]) -> Running {
    start_bin(env!("CARGO_BIN_EXE_addsvc"), extra)
}

const FORWARD: u8 = 0;
const FAIL_500: u8 = 1;
const SLOW: u8 = 2;

/// A fault-injecting HTTP proxy in front of one instance: forwards, answers 500 itself, or
/// forwards after 150 ms. When the instance is gone it drops the caller's connection without
/// an answer, as a dead process would.
struct Proxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    upstream: Arc<Mutex<SocketAddr>>,
    requests: Arc<AtomicUsize>,
}

async fn proxy(upstream: SocketAddr) -> Proxy {
    let listener = kit_transport_http::Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr();
    let mode = Arc::new(AtomicU8::new(FORWARD));
    let upstream = Arc::new(Mutex::new(upstream));
    let requests = Arc::new(AtomicUsize::new(0));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let (m, u, n) = (mode.clone(), upstream.clone(), requests.clone());
    let service = tower::service_fn(move |request: Request<hyper::body::Incoming>| {
        let (mode, upstream, client) =
            (m.load(Ordering::SeqCst), *u.lock().unwrap(), client.clone());
        n.fetch_add(1, Ordering::SeqCst);
        async move {
            let (parts, body) = request.into_parts();
            let body = body.collect().await?.to_bytes();
            if mode == FAIL_500 {
                let mut response = Response::new(Full::new(Bytes::from_static(
                    br#"{"error":"internal error"}"#,
                )));
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                return Ok::<_, kit_core::BoxError>(response);
            }
            if mode == SLOW {
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
            let mut forward = Request::new(Full::new(body));
            *forward.method_mut() = parts.method;
            *forward.uri_mut() = format!("http://{upstream}{}", parts.uri.path()).parse()?;
            *forward.headers_mut() = parts.headers;
            // A dead upstream: the error drops the caller's connection, unanswered.
            let answer = client.request(forward).await?;
            let (parts, body) = answer.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Response::from_parts(parts, Full::new(body)))
        }
    });
    tokio::spawn(listener.serve(service, std::future::pending()));
    Proxy {
        addr,
        mode,
        upstream,
        requests,
    }
}

/// What the test watches of one instance: attempts sent to it (past its breaker), and how
/// often its breaker opened.
#[derive(Clone, Default)]
struct Watch {
    attempts: Arc<AtomicUsize>,
    opened: Arc<AtomicUsize>,
}

fn instance(addr: SocketAddr, watch: &Watch, breaker: bool) -> BoxEndpoint<SumRequest, i64> {
    let client = kit_transport_http::Client::new(
        Method::POST,
        format!("http://{addr}/sum").parse().unwrap(),
        |_cx, r: SumRequest, out: &mut Request<Bytes>| {
            *out.body_mut() = Bytes::from(format!(r#"{{"a":{},"b":{}}}"#, r.a, r.b));
            Ok(())
        },
        |_cx, response: Response<Bytes>| {
            #[derive(serde::Deserialize)]
            struct V {
                v: i64,
            }
            serde_json::from_slice::<V>(response.body())
                .map(|r| r.v)
                .map_err(|err| Error::internal(format!("bad reply: {err}")))
        },
    );
    // Counted under the breaker: the attempts that were sent, not those it refused.
    let sent = watch.attempts.clone();
    let client = Arc::new(client);
    let counted = endpoint_fn(move |cx: Context, r: SumRequest| {
        sent.fetch_add(1, Ordering::SeqCst);
        let client = client.clone();
        async move { client.call(cx, r).await }
    });
    if !breaker {
        return BoxEndpoint::new(counted);
    }
    let opened = watch.opened.clone();
    let breaker = Breaker::new()
        .consecutive_failures(3)
        .open_for(Duration::from_millis(300))
        .max_open_for(Duration::from_secs(1))
        .on_state_change(move |_, to| {
            if to == State::Open {
                opened.fetch_add(1, Ordering::SeqCst);
            }
        })
        .wrap(counted);
    BoxEndpoint::new(breaker)
}

/// `n` calls, `concurrency` at a time; the errors.
async fn calls<E>(ep: &Arc<E>, n: usize, concurrency: usize) -> Vec<Error>
where
    E: Endpoint<SumRequest, Response = i64>,
{
    let mut errors = Vec::new();
    for wave in 0..n / concurrency {
        let mut tasks = Vec::new();
        for i in 0..concurrency {
            let ep = ep.clone();
            let a = (wave * concurrency + i) as i64 + 1;
            tasks.push(tokio::spawn(async move {
                let cx = Context::new().with_timeout(Duration::from_secs(5));
                (a, ep.call(cx, SumRequest { a, b: 1 }).await)
            }));
        }
        for task in tasks {
            match task.await.unwrap() {
                (a, Ok(v)) => assert_eq!(v, a + 1),
                (_, Err(err)) => errors.push(err),
            }
        }
    }
    errors
}

fn count(a: &Arc<AtomicUsize>) -> usize {
    a.load(Ordering::SeqCst)
}

/// One caller's stack over the three instances: retries over a balancer over a breaker per
/// instance, with what it saw.
struct Caller {
    name: &'static str,
    ep: Arc<BoxEndpoint<SumRequest, i64>>,
    watches: [Watch; 3],
}

impl Caller {
    fn new(name: &'static str, addrs: [SocketAddr; 3]) -> Caller {
        let watches = [Watch::default(), Watch::default(), Watch::default()];
        let instances: Vec<_> = addrs
            .iter()
            .zip(&watches)
            .map(|(a, w)| instance(*a, w, true))
            .collect();
        let set = FixedEndpointer::new(instances);
        let retry = Retry::new().max_attempts(3);
        let ep = match name {
            "round robin" => BoxEndpoint::new(retry.wrap(Balanced::new(RoundRobin::new(set)))),
            _ => BoxEndpoint::new(retry.wrap(Balanced::new(P2c::new(set)))),
        };
        Caller {
            name,
            ep: Arc::new(ep),
            watches,
        }
    }

    fn attempts(&self) -> [usize; 3] {
        [0, 1, 2].map(|i| count(&self.watches[i].attempts))
    }

    /// `n` calls; the errors, and the attempts each instance got.
    async fn run(&self, phase: &str, n: usize, concurrency: usize) -> (Vec<Error>, [usize; 3]) {
        let before = self.attempts();
        let errors = calls(&self.ep, n, concurrency).await;
        let after = self.attempts();
        let got = [0, 1, 2].map(|i| after[i] - before[i]);
        eprintln!(
            "{phase} ({}): sent {n}, failed {}, attempts sent per instance {got:?}, C's breaker opened {} times so far",
            self.name,
            errors.len(),
            count(&self.watches[2].opened)
        );
        (errors, got)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_instance_of_three_is_cut_off_and_calls_go_on() {
    let (a, b) = (start(&[]), start(&[]));
    let mut c: Running = start(&[]);
    let proxy = proxy(c.http).await;
    let addrs = [a.http, b.http, proxy.addr];
    // Two callers side by side: round robin leaves cutting C off to its breaker; p2c also
    // counts each failure as a second-long call and stays away by itself.
    let callers = [Caller::new("round robin", addrs), Caller::new("p2c", addrs)];

    // Healthy: every instance serves.
    for caller in &callers {
        let (errors, got) = caller.run("healthy", 300, 6).await;
        assert!(errors.is_empty(), "{errors:?}");
        assert!(got.iter().all(|n| *n > 30), "{got:?}");
    }

    // C slow (150 ms a call): p2c moves the load to A and B within a few calls; round robin
    // keeps giving it a third.
    proxy.mode.store(SLOW, Ordering::SeqCst);
    let (errors, got) = callers[1].run("C slow", 600, 6).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(got[2] * 10 < 600, "the slow instance got {got:?}");
    let (errors, got) = callers[0].run("C slow", 120, 6).await;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(got[2], 40, "round robin does not know");
    proxy.mode.store(FORWARD, Ordering::SeqCst);

    // C stopped (SIGKILL): 1,000 calls each, not one fails.
    let _ = c.child.kill();
    let _ = c.child.wait();
    for caller in &callers {
        let (errors, got) = caller.run("C stopped", 1000, 8).await;
        assert!(errors.is_empty(), "{}: {errors:?}", caller.name);
        assert!(got[2] < 100, "{}: {got:?}", caller.name);
    }
    assert!(
        count(&callers[0].watches[2].opened) >= 1,
        "round robin: C's breaker opened"
    );

    // C back, but answering 500 (internal: not retryable, a failure): its breaker opens within
    // a few calls, and calls fail only until it has, and on its half-open probes.
    c = start(&[]);
    *proxy.upstream.lock().unwrap() = c.http;
    proxy.mode.store(FAIL_500, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let opened = count(&callers[0].watches[2].opened);
    for caller in &callers {
        let (errors, _) = caller.run("C answers 500", 1000, 8).await;
        // What the caller sees is kit's message; the upstream's own text is the detail.
        assert!(
            errors
                .iter()
                .all(|e| e.kind() == kit_core::ErrorKind::Internal
                    && e.detail().is_some_and(|d| d.ends_with("internal error"))),
            "{errors:?}"
        );
        assert!(
            errors.len() < 30,
            "{}: {} calls failed",
            caller.name,
            errors.len()
        );
    }
    assert!(
        count(&callers[0].watches[2].opened) > opened,
        "C's breaker opened for the 500s"
    );

    assert!(count(&proxy.requests) > 0);
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_instance_failing_attempts_stay_within_the_budget() {
    // Three instances that are all gone, and no breakers: the budget alone bounds the retries.
    let addrs: Vec<SocketAddr> = (0..3)
        .map(|_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        })
        .collect();
    let watches = [Watch::default(), Watch::default(), Watch::default()];
    let set = EndpointSet::new();
    set.publish(
        addrs
            .iter()
            .zip(&watches)
            .map(|(addr, w)| instance(*addr, w, false))
            .collect::<Vec<_>>(),
    );
    // No floor: 10% of the calls may be retried, whatever max_attempts says.
    let budget = Budget::new(Duration::from_secs(10), 0, 0.1);
    let ep = Arc::new(
        Retry::new()
            .max_attempts(5)
            .budget(budget)
            .wrap(Balanced::new(P2c::new(set))),
    );
    let errors = calls(&ep, 500, 5).await;
    let attempts: usize = watches.iter().map(|w| count(&w.attempts)).sum();
    eprintln!(
        "all down: sent 500, failed {}, attempts {attempts}",
        errors.len()
    );
    assert_eq!(errors.len(), 500);
    // Without the budget: 2,500 attempts. With it: 500 + 10%.
    assert!(attempts <= 550, "{attempts} attempts");
    let by_budget = errors
        .iter()
        .filter(|e| {
            std::error::Error::source(*e)
                .and_then(|s| s.downcast_ref::<Attempts>())
                .is_some_and(|a| a.stopped == Stopped::Budget)
                || std::error::Error::source(*e)
                    .is_none_or(|s| s.downcast_ref::<Attempts>().is_none())
        })
        .count();
    assert!(by_budget >= 400, "{by_budget} calls stopped by the budget");
}

#[test]
fn addcli_balances_over_several_addresses_and_one_down_is_no_failure() {
    let (a, b) = (start(&[]), start(&[]));
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for (flag, addrs) in [
        ("-http-addr", format!("{},{gone},{}", a.http, b.http)),
        ("-grpc-addr", format!("{},{gone},{}", a.grpc, b.grpc)),
        (
            "-jsonrpc-addr",
            format!("{},{gone},{}", a.jsonrpc, b.jsonrpc),
        ),
    ] {
        for n in 1..=10 {
            let out = Command::new(env!("CARGO_BIN_EXE_addcli"))
                .args([flag, &addrs, &n.to_string(), "1"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{flag} {addrs}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                format!("{n} + 1 = {}", n + 1)
            );
        }
        // One attempt and no instance up: the error says why.
        let out = Command::new(env!("CARGO_BIN_EXE_addcli"))
            .args([flag, &gone.to_string(), "-attempts", "1", "1", "2"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
    }
    // A bad command line is clap's usage error (exit 2); a failed call exits 1.
    for (args, error, code) in [
        (
            vec!["-http-addr", "127.0.0.1:1", "-attempts", "0", "1", "2"],
            "--attempts",
            2,
        ),
        (
            vec!["-http-addr", "127.0.0.1:1", "-breaker", "maybe", "1", "2"],
            "--breaker",
            2,
        ),
        (
            vec!["-http-addr", "127.0.0.1:1", "-rate-limit", "lots", "1", "2"],
            "--rate-limit",
            2,
        ),
        (
            vec![
                "-http-addr",
                "127.0.0.1:1",
                "-grpc-addr",
                "127.0.0.1:1",
                "1",
                "2",
            ],
            "cannot be used with",
            2,
        ),
        (vec!["-http-addr", "127.0.0.1:1", "1"], "<B>", 2),
        (vec!["-http-addr", ",", "1", "2"], "no address", 1),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_addcli"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains(error), "{args:?}: {err}");
    }
}

//! The DNS SRV instancer against a real dnsmasq (see tests/support/dnsmasq.rs): records become
//! sorted `IP:port` sets, changes and NXDOMAIN are followed on the TTL, port 0 is skipped,
//! failures are error events retried with backoff, and the set feeds a balancer end to end.
#![cfg(feature = "dns")]

#[path = "support/dnsmasq.rs"]
mod dnsmasq;

use std::collections::BTreeSet;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dnsmasq::{Dnsmasq, SRV_NAME, srv, srv_lookup};
use kit_client::balance::{Balanced, RoundRobin};
use kit_core::{BoxEndpoint, Context, Endpoint, Error, ErrorKind, endpoint_fn};
use kit_sd::dns::{SrvInstancer, SrvOptions};
use kit_sd::{Endpointer, EndpointerOptions, Event, Instancer};
use slog::Drain;
use tokio::sync::watch;
use tokio::time::Instant;

/// dnsmasq answers with TTL 1 s; a floor under it lets the TTL decide. A short query timeout
/// makes a stopped server an error event within a second.
fn options() -> SrvOptions {
    SrvOptions::new()
        .ttl_floor(Duration::from_millis(200))
        .timeout(Duration::from_millis(200))
}

/// How long a set may take to follow dnsmasq through a restart on its port (`replace`,
/// `start_again`): a resolution caught by it fails (three tries of 200 ms) and the next ones
/// back off, up to 3 s each with jitter, so a few seconds can pass before one gets through; a
/// CI run once saw more than 5 s after `replace`.
const AFTER_RESTART: Duration = Duration::from_secs(15);

fn instancer(dns: &Dnsmasq, options: SrvOptions) -> SrvInstancer {
    SrvInstancer::new(SRV_NAME, vec![dns.addr()], options).expect("a valid SRV name")
}

fn local(ports: &[u16]) -> Vec<String> {
    ports.iter().map(|p| format!("127.0.0.1:{p}")).collect()
}

/// Waits until the current event is the set `expected`, for at most `within`; on failure the
/// message ends with dnsmasq's log (what it was asked, whether it restarted).
async fn wait_set(
    dns: &Dnsmasq,
    rx: &mut watch::Receiver<Event>,
    within: Duration,
    expected: &[String],
) {
    let _ = wait_for(
        dns,
        rx,
        within,
        |event| matches!(event, Ok(set) if **set == *expected),
    )
    .await;
}

/// Waits until the current event satisfies `pred`, for at most `within`; returns it.
async fn wait_for(
    dns: &Dnsmasq,
    rx: &mut watch::Receiver<Event>,
    within: Duration,
    pred: impl Fn(&Event) -> bool,
) -> Event {
    let deadline = Instant::now() + within;
    loop {
        let event = rx.borrow_and_update().clone();
        if pred(&event) {
            return event;
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("the instancer's channel closed; last event {event:?}"),
            Err(_) => panic!(
                "not there within {within:?}; last event {event:?}; dnsmasq's log:\n{}",
                dns.log()
            ),
        }
    }
}

/// Polls `cond` every 50 ms for at most `within`.
async fn eventually(within: Duration, what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn three_records_are_three_sorted_instances_and_the_same_answer_publishes_nothing() {
    // Two targets' addresses come in the answer, the third is looked up: both paths.
    let Some(dns) = Dnsmasq::start(&[
        srv("svc9003", 9003),
        srv_lookup("svc9002", 9002),
        srv("svc9001", 9001),
    ]) else {
        return;
    };
    let instances = instancer(&dns, options());
    let expected = local(&[9001, 9002, 9003]);
    wait_set(
        &dns,
        &mut instances.subscribe(),
        Duration::from_secs(5),
        &expected,
    )
    .await;

    // Past the 1 s TTL the name is asked again (dnsmasq logs the query), and the same answer,
    // in whatever order, publishes no event.
    let rx = instances.subscribe();
    let asked = dns.srv_queries();
    eventually(Duration::from_secs(5), "a re-resolution", || {
        dns.srv_queries() >= asked + 2
    })
    .await;
    assert!(!rx.has_changed().unwrap(), "{:?}", *rx.borrow());
    assert_eq!(&*instances.current().unwrap(), expected);

    // Dropping the instancer stops its task, which closes the channel.
    let mut rx = instances.subscribe();
    drop(instances);
    let closed = tokio::time::timeout(Duration::from_secs(2), rx.changed()).await;
    assert!(matches!(closed, Ok(Err(_))), "{closed:?}");
}

#[tokio::test]
async fn a_change_of_records_is_seen_after_the_ttl() {
    let Some(mut dns) = Dnsmasq::start(&[srv("svc9001", 9001), srv("svc9002", 9002)]) else {
        return;
    };
    let instances = instancer(&dns, options());
    let mut rx = instances.subscribe();
    wait_set(&dns, &mut rx, Duration::from_secs(5), &local(&[9001, 9002])).await;

    dns.replace(&[srv("svc9002", 9002), srv_lookup("svc9004", 9004)]);
    wait_set(&dns, &mut rx, AFTER_RESTART, &local(&[9002, 9004])).await;
}

#[tokio::test]
async fn the_cap_re_resolves_before_a_long_ttl_and_nothing_is_cached() {
    // Answers valid for an hour: only the cap brings the next resolution, and it must reach
    // dnsmasq rather than a cache holding the old answer.
    let Some(mut dns) = Dnsmasq::start_with_ttl(&[srv("svc9001", 9001)], 3600) else {
        return;
    };
    let instances = instancer(&dns, options().ttl_cap(Duration::from_millis(300)));
    let mut rx = instances.subscribe();
    wait_set(&dns, &mut rx, Duration::from_secs(5), &local(&[9001])).await;

    dns.replace(&[srv("svc9002", 9002)]);
    wait_set(&dns, &mut rx, AFTER_RESTART, &local(&[9002])).await;
}

/// A writer whose bytes the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_target_on_port_zero_is_skipped_and_logged() {
    let Some(dns) = Dnsmasq::start(&[srv("svc0", 0), srv("svc9001", 9001), srv("svc9002", 9002)])
    else {
        return;
    };
    let log = Captured::default();
    let logger = kit_log::Logger::new(kit_log::Logfmt::new(log.clone()).ignore_res());
    let instances = instancer(&dns, options().logger(logger));
    wait_set(
        &dns,
        &mut instances.subscribe(),
        Duration::from_secs(5),
        &local(&[9001, 9002]),
    )
    .await;
    let text = log.text();
    assert!(
        text.contains("SRV target svc0.kit.test. has port 0"),
        "{text}"
    );
}

#[tokio::test]
async fn no_records_left_is_an_empty_set() {
    let Some(mut dns) = Dnsmasq::start(&[srv("svc9001", 9001)]) else {
        return;
    };
    let instances = instancer(&dns, options());
    let mut rx = instances.subscribe();
    wait_set(&dns, &mut rx, Duration::from_secs(5), &local(&[9001])).await;

    // No srv-host left: NXDOMAIN, the service has no instances (not an error).
    dns.replace(&[]);
    wait_set(&dns, &mut rx, AFTER_RESTART, &[]).await;
}

/// This thread's CPU time (user + system), from /proc; `None` where there is no such file.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which may hold spaces): utime and stime are the 12th
    // and 13th, in clock ticks of 1/100 s (USER_HZ on Linux).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

// A current-thread runtime (tokio::test's default): the instancer's task and hickory's run on
// this thread, so this thread's CPU time is theirs, whatever other tests do meanwhile.
#[tokio::test]
async fn a_stopped_server_is_an_error_without_spinning_and_the_set_comes_back() {
    let Some(mut dns) = Dnsmasq::start(&[srv("svc9001", 9001)]) else {
        return;
    };
    let instances = instancer(&dns, options());
    let mut rx = instances.subscribe();
    wait_set(&dns, &mut rx, Duration::from_secs(5), &local(&[9001])).await;

    dns.stop();
    let event = wait_for(&dns, &mut rx, Duration::from_secs(10), |e| e.is_err()).await;
    let err = event.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.message().contains(SRV_NAME), "{err}");

    // While the server is down the loop waits (query timeouts, then backoff): a spinning loop
    // would burn the whole 2 s.
    if let Some(before) = thread_cpu() {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let used = thread_cpu().unwrap() - before;
        assert!(used < Duration::from_millis(200), "{used:?} of CPU in 2 s");
    } else {
        let _ = writeln!(
            io::stderr(),
            "SKIP: no /proc/thread-self/stat, no CPU check"
        );
    }

    dns.start_again();
    wait_set(&dns, &mut rx, AFTER_RESTART, &local(&[9001])).await;
}

#[tokio::test]
async fn a_refusing_server_is_an_error_retried_with_backoff() {
    let Some(mut dns) = Dnsmasq::start(&[srv("svc9001", 9001)]) else {
        return;
    };
    let instances = instancer(&dns, options());
    let mut rx = instances.subscribe();
    wait_set(&dns, &mut rx, Duration::from_secs(5), &local(&[9001])).await;

    // REFUSED comes back at once: without backoff the loop would ask thousands of times in
    // the 2 s below (dnsmasq logs each query); with it, a few resolutions of 3 tries each.
    dns.refuse();
    let event = wait_for(&dns, &mut rx, Duration::from_secs(5), |e| e.is_err()).await;
    assert_eq!(event.unwrap_err().kind(), ErrorKind::Unavailable);
    let asked = dns.srv_queries();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let retried = dns.srv_queries() - asked;
    assert!(retried < 150, "{retried} queries in 2 s");

    dns.replace(&[srv("svc9001", 9001)]);
    wait_set(&dns, &mut rx, AFTER_RESTART, &local(&[9001])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_a_balancer_reach_every_instance() {
    let Some(dns) = Dnsmasq::start(&[
        srv("svc9001", 9001),
        srv("svc9002", 9002),
        srv_lookup("svc9003", 9003),
    ]) else {
        return;
    };
    let instances = instancer(&dns, options());
    let expected = local(&[9001, 9002, 9003]);
    wait_set(
        &dns,
        &mut instances.subscribe(),
        Duration::from_secs(5),
        &expected,
    )
    .await;

    // Each instance's endpoint answers with its instance: what a transport's client would
    // reach.
    let endpoints = Endpointer::new(
        &instances,
        |instance: &str| -> Result<BoxEndpoint<(), String>, Error> {
            let instance = instance.to_owned();
            Ok(BoxEndpoint::new(endpoint_fn(move |_cx, ()| {
                let instance = instance.clone();
                async move { Ok::<_, Error>(instance) }
            })))
        },
        EndpointerOptions::new(),
    );
    let call = Balanced::new(RoundRobin::new(endpoints));
    let mut reached = BTreeSet::new();
    for _ in 0..2 * expected.len() {
        reached.insert(call.call(Context::new(), ()).await.unwrap());
    }
    assert_eq!(reached.into_iter().collect::<Vec<_>>(), expected);
}

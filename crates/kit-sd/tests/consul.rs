//! The Consul backend against a test-side server following Consul's documented HTTP API (no
//! Consul server can be installed here; see support/consul.rs): registrations seen and gone
//! (deregistered, TTL lapsed), blocking queries (few queries when idle, a change seen at once),
//! the index rules (backwards, zero), an agent outage ridden out without spinning, bad entries
//! skipped, error answers and oversized bodies, and a registration the agent lost.
#![cfg(feature = "consul")]

#[path = "support/consul.rs"]
mod consul_server;
#[path = "support/watch.rs"]
mod watch;

use std::time::{Duration, Instant};

use consul_server::{Check, Consul, Entry, Mode};
use kit_core::{Endpointer as _, ErrorKind};
use kit_sd::consul::{ConsulInstancer, ConsulOptions, ConsulRegistrar, ServiceRegistration};
use kit_sd::{Endpointer, EndpointerOptions, Instancer, Registrar};
use watch::{Captured, Made, converges, set, thread_cpu};

const SERVICE: &str = "addsvc";

/// Waits up to `within` for `done`; how long it took.
async fn until(within: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

fn registrar(consul: &Consul, n: u16, ttl: Duration) -> ConsulRegistrar {
    ConsulRegistrar::new(
        &consul.agent(),
        ServiceRegistration::new(format!("addsvc-{n}"), SERVICE, "127.0.0.1", 9000 + n),
        ttl,
        ConsulOptions::new(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_seen_and_go_on_deregistration_and_when_their_ttl_lapses() {
    let consul = Consul::start();
    let instancer = ConsulInstancer::new(&consul.agent(), SERVICE, ConsulOptions::new()).unwrap();
    let ttl = Duration::from_secs(1);
    let registrars: Vec<ConsulRegistrar> = (1..=3).map(|n| registrar(&consul, n, ttl)).collect();
    for r in &registrars {
        r.register().await.unwrap();
    }
    let all = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
    let took = converges(&instancer, &all, Duration::from_secs(5)).await;
    eprintln!("three registrations seen in {took:?}");
    // A clean stop deregisters at once.
    registrars[0].deregister().await.unwrap();
    let took = converges(&instancer, &all[1..], Duration::from_secs(2)).await;
    eprintln!("deregistration seen in {took:?}");
    assert!(!consul.ids().contains(&"addsvc-1".to_owned()));
    // A dead process: its passes stop, its check turns critical after the 1 s TTL, and it
    // leaves the passing answers.
    let mut registrars = registrars;
    drop(registrars.remove(1));
    let took = converges(&instancer, &all[2..], Duration::from_secs(3)).await;
    eprintln!("TTL lapse of a dropped registrar seen in {took:?}");
    // Within the TTL after the last pass, and a turn of the query pace at most.
    assert!(took <= Duration::from_secs(2), "{took:?}");
    assert_eq!(consul.check_status("addsvc-2").as_deref(), Some("critical"));
    // The live one outlasts its TTL: its passes keep the check passing.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(set(&instancer).unwrap().len(), 1);
    assert_eq!(consul.check_status("addsvc-3").as_deref(), Some("passing"));
    eprintln!("{} TTL passes received in all", consul.passes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_service_costs_one_query_per_wait_and_a_change_is_seen_at_once() {
    let consul = Consul::start();
    consul.put(Entry::new("a", SERVICE, "127.0.0.1", 9001));
    let options = ConsulOptions::new()
        .wait(Duration::from_secs(1))
        .token("secret-token")
        .datacenter("dc1");
    let instancer = ConsulInstancer::new(&consul.agent(), SERVICE, options).unwrap();
    converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = consul.query_count();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let idle = consul.query_count() - before;
    eprintln!("{idle} queries in 2.5 s of an idle service with wait=1s");
    assert!((2..=3).contains(&idle), "{idle}");
    // The first query reads; every later one blocks at an index, with the wait; all carry the
    // token, the datacenter and `passing`.
    let queries = consul.queries();
    assert_eq!(queries[0].index, 0);
    assert!(
        queries[1..]
            .iter()
            .all(|q| q.index > 0 && q.wait == Some(Duration::from_secs(1))),
        "{queries:?}"
    );
    assert!(
        queries
            .iter()
            .all(|q| q.token.as_deref() == Some("secret-token")
                && q.dc.as_deref() == Some("dc1")
                && q.passing)
    );
    // A change while a query is blocked is answered at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut rx = instancer.subscribe();
    rx.borrow_and_update();
    let start = Instant::now();
    consul.put(Entry::new("b", SERVICE, "127.0.0.1", 9002));
    tokio::time::timeout(Duration::from_secs(1), rx.changed())
        .await
        .unwrap()
        .unwrap();
    let took = start.elapsed();
    eprintln!("a change seen {took:?} after it was made, during a blocked query");
    assert!(took < Duration::from_millis(300), "{took:?}");
    converges(
        &instancer,
        &["127.0.0.1:9001", "127.0.0.1:9002"],
        Duration::from_secs(1),
    )
    .await;
    // Dropping the instancer stops its queries.
    drop(instancer);
    let count = consul.query_count();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(consul.query_count(), count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_going_backwards_is_reset_and_an_index_of_zero_does_not_spin() {
    let consul = Consul::start();
    consul.put(Entry::new("a", SERVICE, "127.0.0.1", 9001));
    consul.put(Entry::new("b", SERVICE, "127.0.0.1", 9002));
    let instancer = ConsulInstancer::new(&consul.agent(), SERVICE, ConsulOptions::new()).unwrap();
    let ab = ["127.0.0.1:9001", "127.0.0.1:9002"];
    converges(&instancer, &ab, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let blocked_at = consul.queries().last().unwrap().index;
    // A snapshot restored: the index goes back from 102 to 10, and the blocked query returns.
    let mark = consul.query_count();
    consul.set_index(10);
    until(
        Duration::from_secs(2),
        "two queries after the reset",
        || consul.query_count() >= mark + 2,
    )
    .await;
    let after: Vec<u64> = consul.queries()[mark..].iter().map(|q| q.index).collect();
    eprintln!(
        "blocked at {blocked_at}; index set back to 10; the next queries' indexes: {after:?}"
    );
    assert_eq!(after[..2], [0, 10]);
    assert_eq!(set(&instancer).unwrap().len(), 2);
    // A change now (index 11) is seen at once; a client still waiting for an index past 102
    // would miss it.
    let start = Instant::now();
    consul.put(Entry::new("c", SERVICE, "127.0.0.1", 9003));
    let abc = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
    converges(&instancer, &abc, Duration::from_secs(1)).await;
    eprintln!("a change after the reset seen in {:?}", start.elapsed());

    // Every answer says index 0: the loop blocks at 1, which this server answers at once, so
    // only the pace (two back to back, then one per second) keeps it from spinning.
    let mark = consul.query_count();
    consul.set_mode(Mode::ZeroIndex);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queries = consul.queries();
    let zero = &queries[mark..];
    eprintln!(
        "{} queries in 2 s while every answer said index 0 (indexes asked: {:?})",
        zero.len(),
        zero.iter().map(|q| q.index).collect::<Vec<_>>()
    );
    // Two back to back, then one a second: 4, and one more for timing.
    assert!(zero.len() <= 5, "{}", zero.len());
    assert!(zero.iter().all(|q| q.index == 1 || q.index == 11));
    assert_eq!(set(&instancer).unwrap().len(), 3);
    consul.set_mode(Mode::Normal);
    consul.remove("a");
    converges(&instancer, &abc[1..], Duration::from_secs(3)).await;
}

#[tokio::test]
async fn an_agent_outage_is_ridden_out_on_the_last_good_set_without_spinning() {
    let consul = Consul::start();
    consul.put(Entry::new("a", SERVICE, "127.0.0.1", 9001));
    consul.put(Entry::new("b", SERVICE, "127.0.0.1", 9002));
    let log = Captured::default();
    let instancer = ConsulInstancer::new(
        &consul.agent(),
        SERVICE,
        ConsulOptions::new().logger(log.logger()),
    )
    .unwrap();
    let made = Made::default();
    let endpointer = Endpointer::new(
        &instancer,
        made.factory(),
        EndpointerOptions::new().invalidate_on_error(Some(Duration::from_secs(30))),
    );
    converges(
        &instancer,
        &["127.0.0.1:9001", "127.0.0.1:9002"],
        Duration::from_secs(5),
    )
    .await;

    let failed_before = log.lines("consul instancer").len();
    consul.stop();
    let cpu = thread_cpu();
    let down = Instant::now();
    let mut saw_error = None;
    while down.elapsed() < Duration::from_secs(3) {
        // The last good set is served the whole time.
        assert_eq!(endpointer.endpoints().unwrap().len(), 2);
        if let Err(err) = instancer.current() {
            saw_error.get_or_insert(err);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spent = thread_cpu() - cpu;
    let tries = log.lines("consul instancer").len() - failed_before;
    let err = saw_error.expect("the instancer reports the outage");
    eprintln!("agent down 3 s: {tries} failed queries, {spent:?} of CPU; the event: {err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().starts_with("consul: "), "{err}");
    // Retries back off: a tight loop would burn most of the 3 s, and make thousands of tries.
    assert!(spent < Duration::from_millis(300), "{spent:?}");
    assert!((1..=10).contains(&tries), "{tries}");

    consul.start_again();
    consul.put(Entry::new("c", SERVICE, "127.0.0.1", 9003));
    consul.remove("a");
    let took = converges(
        &instancer,
        &["127.0.0.1:9002", "127.0.0.1:9003"],
        Duration::from_secs(5),
    )
    .await;
    eprintln!("converged {took:?} after the agent came back");
    assert_eq!(endpointer.endpoints().unwrap().len(), 2);
    // a, b and c were each made once: b kept its endpoint through the outage.
    assert_eq!(made.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_are_skipped_and_logged_once_and_the_rest_works() {
    let consul = Consul::start();
    let tagged = |id: &str, address: &str, port: i64| {
        let mut e = Entry::new(id, SERVICE, address, port);
        e.tags = vec!["v1".to_owned(), "other".to_owned()];
        e
    };
    consul.put(tagged("good", "127.0.0.1", 9001));
    consul.put(tagged("v6", "::1", 9003));
    let mut on_node = tagged("on-node", "", 9004);
    on_node.node_address = "127.0.0.2".to_owned();
    consul.put(on_node);
    consul.put(tagged("port-0", "127.0.0.1", 0));
    let mut nowhere = tagged("no-address", "", 9005);
    nowhere.node_address = String::new();
    consul.put(nowhere);
    consul.put(tagged("words", "not an address", 9006));
    // Left out without a word: not tagged v1, or not passing.
    consul.put(Entry::new("untagged", SERVICE, "127.0.0.1", 9007));
    let mut critical = tagged("critical", "127.0.0.1", 9008);
    critical.check = Some(Check::fixed("service:critical", "critical"));
    consul.put(critical);
    let log = Captured::default();
    let instancer = ConsulInstancer::new(
        &consul.agent(),
        SERVICE,
        ConsulOptions::new().tags(["v1"]).logger(log.logger()),
    )
    .unwrap();
    converges(
        &instancer,
        &["127.0.0.1:9001", "[::1]:9003", "127.0.0.2:9004"],
        Duration::from_secs(5),
    )
    .await;
    // A change reads every entry again: the bad ones are not logged again.
    consul.put(tagged("more", "127.0.0.1", 9009));
    converges(
        &instancer,
        &[
            "127.0.0.1:9001",
            "[::1]:9003",
            "127.0.0.2:9004",
            "127.0.0.1:9009",
        ],
        Duration::from_secs(2),
    )
    .await;
    let skipped = log.lines("consul entry skipped");
    eprintln!("{}", skipped.join("\n"));
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for (entry, why) in [
        ("port-0", "not host:port"),
        ("no-address", "no address"),
        ("words", "not host:port"),
    ] {
        assert!(
            skipped.iter().any(|l| l.contains(entry) && l.contains(why)),
            "{entry}: {skipped:?}"
        );
    }
    assert!(
        consul
            .queries()
            .iter()
            .all(|q| q.tags == ["v1"] && q.passing && q.service == SERVICE)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_and_oversized_bodies_are_error_events_and_the_loop_goes_on() {
    let consul = Consul::start();
    consul.put(Entry::new("a", SERVICE, "127.0.0.1", 9001));
    let instancer = ConsulInstancer::new(
        &consul.agent(),
        SERVICE,
        ConsulOptions::new().max_body(64 << 10),
    )
    .unwrap();
    converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(5)).await;

    let mark = consul.query_count();
    consul.set_mode(Mode::Fail500);
    until(Duration::from_secs(2), "a 500 error event", || {
        instancer.current().is_err()
    })
    .await;
    let err = instancer.current().unwrap_err();
    eprintln!("500: {err}");
    assert!(err.message().contains("500"), "{err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = consul.query_count() - mark;
    eprintln!("{during} queries in about 1 s of 500 answers");
    assert!(during <= 4, "{during}");
    consul.set_mode(Mode::Normal);
    let took = converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(5)).await;
    eprintln!("good again {took:?} after the 500s stopped");

    consul.set_mode(Mode::Oversized(1 << 20));
    until(
        Duration::from_secs(2),
        "an oversized-body error event",
        || instancer.current().is_err(),
    )
    .await;
    let err = instancer.current().unwrap_err();
    eprintln!("1 MiB answer with a 64 KiB limit: {err}");
    assert!(err.message().contains("limit"), "{err}");
    consul.set_mode(Mode::Normal);
    converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_the_agent_lost_is_registered_again() {
    let consul = Consul::start();
    let instancer = ConsulInstancer::new(&consul.agent(), SERVICE, ConsulOptions::new()).unwrap();
    let r = registrar(&consul, 1, Duration::from_secs(1));
    r.register().await.unwrap();
    converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(5)).await;
    assert_eq!(consul.registrations("addsvc-1"), 1);
    // The agent restarts without its state: its next pass is answered 404 "Unknown check ID".
    consul.stop();
    consul.forget();
    consul.start_again();
    let took = until(Duration::from_secs(3), "registered again", || {
        consul.registrations("addsvc-1") == 2
    })
    .await;
    eprintln!("registered again {took:?} after the agent forgot it (404 on the pass)");
    converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(3)).await;
    // An agent before 1.11 answers 500 "does not have associated TTL": the same.
    consul.old_pass_errors(true);
    consul.forget();
    let took = until(Duration::from_secs(3), "registered again", || {
        consul.registrations("addsvc-1") == 3
    })
    .await;
    eprintln!("registered again {took:?} after an older agent forgot it (500 on the pass)");
    converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(3)).await;
    // Deregistering stops the passes and removes the service.
    r.deregister().await.unwrap();
    converges(&instancer, &[], Duration::from_secs(2)).await;
    let passes = consul.passes();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(consul.passes(), passes);
    assert_eq!(consul.registrations("addsvc-1"), 3);
    assert!(consul.ids().is_empty());
}

#[tokio::test]
async fn bad_arguments_and_a_missing_agent_fail_with_clear_errors() {
    for (agent, service) in [
        ("https://127.0.0.1:8501", SERVICE),
        ("ftp://127.0.0.1:8500", SERVICE),
        ("127.0.0.1:8500", " "),
    ] {
        let err = ConsulInstancer::new(agent, service, ConsulOptions::new()).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidArgument,
            "{agent} {service}: {err}"
        );
    }
    let zero = ServiceRegistration::new("x", SERVICE, "127.0.0.1", 0);
    let err = ConsulRegistrar::new(
        "127.0.0.1:8500",
        zero,
        Duration::from_secs(1),
        ConsulOptions::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);

    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = ConsulRegistrar::new(
        &gone.to_string(),
        ServiceRegistration::new("x", SERVICE, "127.0.0.1", 9001),
        Duration::from_secs(1),
        ConsulOptions::new(),
    )
    .unwrap();
    let err = r.register().await.unwrap_err();
    eprintln!("registering with no agent: {err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.message().starts_with("consul: "), "{err}");
}

//! The etcd backend against a real etcd (Debian etcd-server) on loopback: registrations seen
//! and gone, lease expiry, a restart ridden out without spinning, a thousand instances, bad
//! entries skipped.
#![cfg(feature = "etcd")]

#[path = "support/etcd.rs"]
mod etcd_server;
#[path = "support/watch.rs"]
mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etcd_server::Etcd;
use kit_core::Endpointer as _;
use kit_sd::etcd::{EtcdInstancer, EtcdOptions, EtcdRegistrar};
use kit_sd::{Endpointer, EndpointerOptions, Instancer, Registrar};
use watch::{Captured, Made, converges, set, thread_cpu};

const PREFIX: &str = "/services/addsvc/";

fn registrar(etcd: &Etcd, n: u16) -> EtcdRegistrar {
    EtcdRegistrar::new(
        etcd.endpoints(),
        format!("{PREFIX}instance-{n}"),
        format!("127.0.0.1:{}", 9000 + n),
        Duration::from_secs(2),
        EtcdOptions::new(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_seen_and_go_on_deregistration_and_on_lease_expiry() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let instancer = EtcdInstancer::new(etcd.endpoints(), PREFIX, EtcdOptions::new());
    let registrars: Vec<EtcdRegistrar> = (1..=3).map(|n| registrar(&etcd, n)).collect();
    for r in &registrars {
        r.register().await.unwrap();
    }
    let all = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
    let took = converges(&instancer, &all, Duration::from_secs(5)).await;
    eprintln!("three registrations seen in {took:?}");
    // A clean stop deregisters at once (the lease is revoked).
    registrars[0].deregister().await.unwrap();
    let took = converges(&instancer, &all[1..], Duration::from_secs(2)).await;
    eprintln!("deregistration seen in {took:?}");
    // A dead process: its keep-alive stops, and the key goes when its 2 s lease runs out.
    let mut registrars = registrars;
    let dead = registrars.remove(1);
    drop(dead);
    let took = converges(&instancer, &all[2..], Duration::from_secs(5)).await;
    eprintln!("lease expiry seen in {took:?}");
    // The one left keeps its registration alive well past its TTL.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(set(&instancer).unwrap().len(), 1);
}

#[tokio::test]
async fn an_etcd_restart_is_ridden_out_on_the_last_good_set_without_spinning() {
    let Some(mut etcd) = Etcd::start().await else {
        return;
    };
    let mut client = etcd.client().await;
    client
        .put(format!("{PREFIX}a"), "127.0.0.1:9001", None)
        .await
        .unwrap();
    client
        .put(format!("{PREFIX}b"), "127.0.0.1:9002", None)
        .await
        .unwrap();
    let instancer = EtcdInstancer::new(etcd.endpoints(), PREFIX, EtcdOptions::new());
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

    etcd.kill();
    let cpu = thread_cpu();
    let down = Instant::now();
    let mut saw_error = false;
    while down.elapsed() < Duration::from_secs(4) {
        // The last good set is served the whole time.
        assert_eq!(endpointer.endpoints().unwrap().len(), 2);
        saw_error |= instancer.current().is_err();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spent = thread_cpu() - cpu;
    eprintln!("CPU while etcd was down for 4 s: {spent:?}");
    assert!(saw_error, "the instancer reports the outage");
    // Retries back off: a tight loop would burn most of the 4 s.
    assert!(spent < Duration::from_millis(400), "{spent:?}");

    etcd.run().await;
    let mut client = etcd.client().await;
    client
        .put(format!("{PREFIX}c"), "127.0.0.1:9003", None)
        .await
        .unwrap();
    client.delete(format!("{PREFIX}a"), None).await.unwrap();
    let took = converges(
        &instancer,
        &["127.0.0.1:9002", "127.0.0.1:9003"],
        Duration::from_secs(5),
    )
    .await;
    eprintln!("converged {took:?} after etcd came back");
    assert_eq!(endpointer.endpoints().unwrap().len(), 2);
    // a, b and c were each made once: b kept its endpoint through the outage.
    assert_eq!(made.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_instances_are_seen_at_once_and_one_change_remakes_one_endpoint() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let mut client = etcd.client().await;
    for n in 0..1000u32 {
        client
            .put(
                format!("{PREFIX}{n:04}"),
                format!("10.0.{}.{}:8081", n / 250, n % 250),
                None,
            )
            .await
            .unwrap();
    }
    let start = Instant::now();
    let instancer = EtcdInstancer::new(etcd.endpoints(), PREFIX, EtcdOptions::new());
    let made = Made::default();
    let endpointer = Endpointer::new(&instancer, made.factory(), EndpointerOptions::new());
    while endpointer.endpoints().map_or(0, |e| e.len()) < 1000 {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "1,000 not seen in 2 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("1,000 instances seen in {:?}", start.elapsed());
    assert_eq!(made.count(), 1000);
    // One instance moves: one endpoint is made, the other 999 are kept.
    client
        .put(format!("{PREFIX}0500"), "10.9.9.9:8081", None)
        .await
        .unwrap();
    let start = Instant::now();
    while !set(&instancer).unwrap().contains("10.9.9.9:8081") {
        assert!(start.elapsed() < Duration::from_secs(2));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(made.count(), 1001);
    assert_eq!(endpointer.endpoints().unwrap().len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_entries_are_skipped_and_logged_and_the_rest_works() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let mut client = etcd.client().await;
    client
        .put(format!("{PREFIX}good"), "127.0.0.1:9001", None)
        .await
        .unwrap();
    client
        .put(format!("{PREFIX}binary"), vec![0xff, 0xfe, 0x00], None)
        .await
        .unwrap();
    client
        .put(format!("{PREFIX}empty"), "", None)
        .await
        .unwrap();
    let log = Captured::default();
    let logger = log.logger();
    let instancer = EtcdInstancer::new(etcd.endpoints(), PREFIX, EtcdOptions::new().logger(logger));
    converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(5)).await;
    // Bad data arriving through the watch is skipped too, and a fixed entry comes back.
    client
        .put(format!("{PREFIX}words"), "not an address", None)
        .await
        .unwrap();
    client
        .put(format!("{PREFIX}other"), "127.0.0.1:9002", None)
        .await
        .unwrap();
    converges(
        &instancer,
        &["127.0.0.1:9001", "127.0.0.1:9002"],
        Duration::from_secs(5),
    )
    .await;
    client
        .put(format!("{PREFIX}empty"), "127.0.0.1:9003", None)
        .await
        .unwrap();
    converges(
        &instancer,
        &["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"],
        Duration::from_secs(5),
    )
    .await;
    let text = log.text();
    let skipped: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("etcd entry skipped"))
        .collect();
    assert_eq!(skipped.len(), 3, "{text}");
    assert!(skipped.iter().any(|l| l.contains("not UTF-8")), "{text}");
    assert!(skipped.iter().any(|l| l.contains("empty")), "{text}");
    assert!(
        skipped.iter().any(|l| l.contains("not host:port")),
        "{text}"
    );
}

#[tokio::test]
async fn registering_with_no_etcd_fails_with_a_clear_error() {
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = EtcdRegistrar::new(
        vec![gone.to_string()],
        format!("{PREFIX}x"),
        "127.0.0.1:9001",
        Duration::from_secs(2),
        EtcdOptions::new().connect_timeout(Duration::from_millis(300)),
    );
    let err = r.register().await.unwrap_err();
    assert_eq!(err.kind(), kit_core::ErrorKind::Unavailable);
    assert!(err.message().starts_with("etcd: "), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_lease_is_replaced_and_the_instance_registered_again() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let instancer = EtcdInstancer::new(etcd.endpoints(), PREFIX, EtcdOptions::new());
    let r = registrar(&etcd, 1);
    r.register().await.unwrap();
    converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(5)).await;
    // The lease is lost (revoked behind the registrar's back, as an expiry during a long
    // partition would): the key goes, and the registrar puts it back under a new lease.
    let mut client = etcd.client().await;
    let key = format!("{PREFIX}instance-1");
    let lease = client.get(key.as_str(), None).await.unwrap().kvs()[0].lease();
    client.lease_revoke(lease).await.unwrap();
    let start = Instant::now();
    loop {
        let now = client.get(key.as_str(), None).await.unwrap();
        if let Some(kv) = now.kvs().first()
            && kv.lease() != lease
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not registered again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "registered again {:?} after the lease was lost",
        start.elapsed()
    );
    converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(5)).await;
    r.deregister().await.unwrap();
    converges(&instancer, &[], Duration::from_secs(2)).await;
}

/// A TCP proxy the test can cut: while cut, it drops every connection and refuses new ones.
struct Cuttable {
    addr: std::net::SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
    generation: Arc<AtomicUsize>,
}

async fn cuttable(upstream: String) -> Cuttable {
    use std::sync::atomic::AtomicBool;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let cut = Arc::new(AtomicBool::new(false));
    let generation = Arc::new(AtomicUsize::new(0));
    let (c, g) = (cut.clone(), generation.clone());
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if c.load(Ordering::SeqCst) {
                continue;
            }
            let (upstream, c, g) = (upstream.clone(), c.clone(), g.clone());
            let born = g.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                let cut_off = async {
                    while !c.load(Ordering::SeqCst) && g.load(Ordering::SeqCst) == born {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                tokio::select! {
                    _ = copy => {}
                    () = cut_off => {}
                }
            });
        }
    });
    Cuttable {
        addr,
        cut,
        generation,
    }
}

impl Cuttable {
    fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_resumed_past_a_compaction_reads_everything_again() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let mut client = etcd.client().await;
    client
        .put(format!("{PREFIX}a"), "127.0.0.1:9001", None)
        .await
        .unwrap();
    client
        .put(format!("{PREFIX}b"), "127.0.0.1:9002", None)
        .await
        .unwrap();
    // The instancer reaches etcd through a proxy the test can cut.
    let proxy = cuttable(etcd.endpoint()).await;
    let log = Captured::default();
    let instancer = EtcdInstancer::new(
        vec![proxy.addr.to_string()],
        PREFIX,
        EtcdOptions::new().logger(log.logger()),
    );
    converges(
        &instancer,
        &["127.0.0.1:9001", "127.0.0.1:9002"],
        Duration::from_secs(5),
    )
    .await;
    // Cut off, it cannot see what happens next: b deleted, c added, and the history its watch
    // would resume from compacted away.
    proxy.set_cut(true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.delete(format!("{PREFIX}b"), None).await.unwrap();
    let put = client
        .put(format!("{PREFIX}c"), "127.0.0.1:9003", None)
        .await
        .unwrap();
    let revision = put.header().unwrap().revision();
    client.compact(revision, None).await.unwrap();
    // Back: the resumed watch starts at a compacted revision, is cancelled, and the instancer
    // reads the prefix again from scratch: the exact set, b gone.
    proxy.set_cut(false);
    let took = converges(
        &instancer,
        &["127.0.0.1:9001", "127.0.0.1:9003"],
        Duration::from_secs(10),
    )
    .await;
    eprintln!("converged {took:?} after the proxy reopened, past a compaction");
    assert!(
        !log.lines("etcd watch cancelled, reading again").is_empty(),
        "the compaction was seen: {}",
        log.text()
    );
}

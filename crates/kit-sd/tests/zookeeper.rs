//! The ZooKeeper backend against a real ZooKeeper 3.8 (Debian zookeeper) on loopback:
//! registrations seen and gone (deregistered, dropped), a missing path as an empty set, a
//! restart ridden out without spinning, bad children skipped and logged once, an expired
//! session registered again by itself.
#![cfg(feature = "zookeeper")]

#[path = "support/watch.rs"]
mod watch;
#[path = "support/zookeeper.rs"]
mod zk_server;

use std::time::{Duration, Instant};

use kit_core::Endpointer as _;
use kit_sd::zookeeper::{ZkInstancer, ZkOptions, ZkRegistrar};
use kit_sd::{Endpointer, EndpointerOptions, Instancer, Registrar};
use watch::{Captured, Made, converges, set, thread_cpu};
use zk_server::ZooKeeper;
use zookeeper_client::{Acls, CreateMode};

const PATH: &str = "/services/addsvc";

/// A registrar for 127.0.0.1:900n, with a 2 s session (the server allows 1 s to 10 s).
fn registrar(zk: &ZooKeeper, n: u16) -> ZkRegistrar {
    ZkRegistrar::new(
        zk.servers(),
        PATH,
        format!("127.0.0.1:{}", 9000 + n),
        ZkOptions::new().session_timeout(Duration::from_secs(2)),
    )
}

fn persistent() -> zookeeper_client::CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_seen_and_go_on_deregistration_and_on_drop() {
    let Some(zk) = ZooKeeper::start().await else {
        return;
    };
    // Started before any registration: the path is missing, which is an empty set.
    let instancer = ZkInstancer::new(zk.servers(), PATH, ZkOptions::new());
    converges(&instancer, &[], Duration::from_secs(5)).await;
    let registrars: Vec<ZkRegistrar> = (1..=3).map(|n| registrar(&zk, n)).collect();
    for r in &registrars {
        r.register().await.unwrap();
    }
    let all = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"];
    let took = converges(&instancer, &all, Duration::from_secs(5)).await;
    eprintln!("three registrations seen in {took:?} (the path created by the first)");
    // A clean stop deletes the node at once.
    registrars[0].deregister().await.unwrap();
    let took = converges(&instancer, &all[1..], Duration::from_secs(2)).await;
    eprintln!("deregistration seen in {took:?}");
    // Dropping a registrar closes its session, and ZooKeeper deletes its node with it; at
    // worst (a close that does not arrive) the node goes when the 2 s session expires.
    let mut registrars = registrars;
    let dropped = registrars.remove(1);
    drop(dropped);
    let took = converges(&instancer, &all[2..], Duration::from_secs(4)).await;
    eprintln!("dropped registrar's node gone in {took:?}");
    // The one left keeps its session (the client's heartbeats) well past its timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(set(&instancer).unwrap().len(), 1);
    // And no node is left behind by the others.
    let client = zk.client().await;
    assert_eq!(client.list_children(PATH).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_zookeeper_restart_is_ridden_out_on_the_last_good_set_without_spinning() {
    let Some(mut zk) = ZooKeeper::start().await else {
        return;
    };
    let client = zk.client().await;
    client.mkdir(PATH, &persistent()).await.unwrap();
    // Persistent nodes (written by a plain client) outlive any session, so the set after the
    // restart is known exactly.
    for (name, instance) in [("a", "127.0.0.1:9001"), ("b", "127.0.0.1:9002")] {
        client
            .create(
                &format!("{PATH}/{name}"),
                instance.as_bytes(),
                &persistent(),
            )
            .await
            .unwrap();
    }
    drop(client);
    // A registration with the default 10 s session: the outage below is shorter, so the
    // client reconnects within the same session and the node stays. (Had it expired, the
    // registrar would register the same address again: the set would be the same.)
    let registered = ZkRegistrar::new(zk.servers(), PATH, "127.0.0.1:9005", ZkOptions::new());
    registered.register().await.unwrap();
    let instancer = ZkInstancer::new(zk.servers(), PATH, ZkOptions::new());
    let made = Made::default();
    let endpointer = Endpointer::new(
        &instancer,
        made.factory(),
        EndpointerOptions::new().invalidate_on_error(Some(Duration::from_secs(30))),
    );
    let before = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9005"];
    converges(&instancer, &before, Duration::from_secs(5)).await;

    zk.kill();
    let cpu = thread_cpu();
    let down = Instant::now();
    let mut saw_error = false;
    while down.elapsed() < Duration::from_secs(4) {
        // The last good set is served the whole time.
        assert_eq!(endpointer.endpoints().unwrap().len(), 3);
        saw_error |= instancer.current().is_err();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spent = thread_cpu() - cpu;
    eprintln!("CPU while zookeeper was down for 4 s: {spent:?}");
    assert!(saw_error, "the instancer reports the outage");
    // Retries back off: a tight loop would burn most of the 4 s.
    assert!(spent < Duration::from_millis(400), "{spent:?}");

    zk.run().await;
    let restarted = down.elapsed();
    let client = zk.client().await;
    client
        .create(&format!("{PATH}/c"), b"127.0.0.1:9003", &persistent())
        .await
        .unwrap();
    client.delete(&format!("{PATH}/a"), None).await.unwrap();
    let after = ["127.0.0.1:9002", "127.0.0.1:9003", "127.0.0.1:9005"];
    let took = converges(&instancer, &after, Duration::from_secs(5)).await;
    eprintln!("back after {restarted:?} down; converged {took:?} after the change");
    assert_eq!(endpointer.endpoints().unwrap().len(), 3);
    // a, b, the registration and c were each made once: b and the registration kept their
    // endpoints through the outage.
    assert_eq!(made.count(), 4);
    // And the registration is still the node of its first session.
    assert_eq!(client.list_children(PATH).await.unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_children_are_skipped_and_logged_once_and_the_rest_works() {
    let Some(zk) = ZooKeeper::start().await else {
        return;
    };
    let client = zk.client().await;
    client.mkdir(PATH, &persistent()).await.unwrap();
    for (name, data) in [
        ("good", &b"127.0.0.1:9001"[..]),
        ("binary", &[0xff, 0xfe, 0x00][..]),
        ("empty", &b""[..]),
    ] {
        client
            .create(&format!("{PATH}/{name}"), data, &persistent())
            .await
            .unwrap();
    }
    let log = Captured::default();
    let instancer = ZkInstancer::new(zk.servers(), PATH, ZkOptions::new().logger(log.logger()));
    converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(5)).await;
    // Bad data arriving with a later change is skipped too; the ones already skipped are read
    // again at every change, but not logged again.
    for (name, data) in [("words", "not an address"), ("other", "127.0.0.1:9002")] {
        client
            .create(&format!("{PATH}/{name}"), data.as_bytes(), &persistent())
            .await
            .unwrap();
    }
    converges(
        &instancer,
        &["127.0.0.1:9001", "127.0.0.1:9002"],
        Duration::from_secs(5),
    )
    .await;
    client
        .delete(&format!("{PATH}/binary"), None)
        .await
        .unwrap();
    client
        .create(&format!("{PATH}/fixed"), b"127.0.0.1:9003", &persistent())
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
        .filter(|l| l.contains("zookeeper entry skipped"))
        .collect();
    assert_eq!(skipped.len(), 3, "{text}");
    assert!(
        skipped
            .iter()
            .any(|l| l.contains("/binary") && l.contains("not UTF-8")),
        "{text}"
    );
    assert!(
        skipped
            .iter()
            .any(|l| l.contains("/empty") && l.contains("empty")),
        "{text}"
    );
    assert!(
        skipped
            .iter()
            .any(|l| l.contains("/words") && l.contains("not host:port")),
        "{text}"
    );
}

#[tokio::test]
async fn registering_with_no_zookeeper_fails_with_a_clear_error_after_the_session_timeout() {
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let r = ZkRegistrar::new(
        vec![gone.to_string()],
        PATH,
        "127.0.0.1:9001",
        ZkOptions::new().session_timeout(Duration::from_secs(1)),
    );
    let start = Instant::now();
    let err = r.register().await.unwrap_err();
    let took = start.elapsed();
    eprintln!("registering with no zookeeper failed after {took:?}: {err}");
    assert_eq!(err.kind(), kit_core::ErrorKind::Unavailable);
    assert!(
        err.message().starts_with("zookeeper: connecting: "),
        "{err}"
    );
    // The client tries again (with pauses) for a session timeout, then gives up.
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registrar_whose_session_expired_registers_again_by_itself() {
    let Some(mut zk) = ZooKeeper::start().await else {
        return;
    };
    let log = Captured::default();
    // The shortest session the server allows (2 x tickTime): the client gives it up 1.4 s
    // after its last answer.
    let r = ZkRegistrar::new(
        zk.servers(),
        PATH,
        "127.0.0.1:9001",
        ZkOptions::new()
            .session_timeout(Duration::from_secs(1))
            .logger(log.logger()),
    );
    r.register().await.unwrap();
    let client = zk.client().await;
    let first = client.list_children(PATH).await.unwrap();
    assert_eq!(first.len(), 1, "{first:?}");
    let (_, stat) = client
        .get_data(&format!("{PATH}/{}", first[0]))
        .await
        .unwrap();
    let first_owner = stat.ephemeral_owner;
    drop(client);

    // The registry goes away until the registrar's session is over (as in a partition longer
    // than the session timeout), then comes back with the old session still on its books.
    zk.kill();
    let down = Instant::now();
    while !log.text().contains("zookeeper registration lost") {
        assert!(down.elapsed() < Duration::from_secs(5), "{}", log.text());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "session given up {:?} after the registry went down",
        down.elapsed()
    );
    zk.run().await;
    let back = Instant::now();

    // A new node of a new session, with the same data; the old node goes when the restarted
    // server expires the old session.
    let client = zk.client().await;
    loop {
        let children = client.list_children(PATH).await.unwrap();
        if let [only] = children.as_slice()
            && *only != first[0]
        {
            let (data, stat) = client.get_data(&format!("{PATH}/{only}")).await.unwrap();
            assert_eq!(data, b"127.0.0.1:9001");
            assert_ne!(stat.ephemeral_owner, first_owner);
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "{children:?} (first {first:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "registered again, old node gone, {:?} after the restart",
        back.elapsed()
    );
    let instancer = ZkInstancer::new(zk.servers(), PATH, ZkOptions::new());
    converges(&instancer, &["127.0.0.1:9001"], Duration::from_secs(5)).await;
    r.deregister().await.unwrap();
    let took = converges(&instancer, &[], Duration::from_secs(2)).await;
    eprintln!("deregistered in {took:?}");
    assert!(client.list_children(PATH).await.unwrap().is_empty());
}

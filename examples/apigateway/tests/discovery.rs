//! The gateway finds its instances through each registry flag, against the real server: DNS
//! SRV records in a dnsmasq (`-dns-addr`) and a registration in ZooKeeper (`-zk-addr`); against
//! kit-sd's test-side Consul, which follows Consul's documented API (`-consul-addr`); and it
//! calls addsvc over gRPC by flag.

#[path = "../../addsvc/tests/support/mod.rs"]
mod addsvc_support;
#[path = "../../../crates/kit-sd/tests/support/consul.rs"]
mod consul_server;
#[path = "../../../crates/kit-sd/tests/support/dnsmasq.rs"]
mod dnsmasq;
mod support;
#[path = "../../../crates/kit-sd/tests/support/zookeeper.rs"]
mod zk_server;

use std::time::{Duration, Instant};

use addsvc_support::{Running, post, start_bin};
use kit_sd::Registrar;
use kit_sd::zookeeper::{ZkOptions, ZkRegistrar};
use support::{Gateway, addsvc_bin, gateway};

fn addsvc() -> Running {
    start_bin(&addsvc_bin(), &[])
}

/// Calls the gateway until a call succeeds (the registry is read in the background).
fn answers(gateway: &Gateway) {
    let start = Instant::now();
    loop {
        let got = post(gateway.http, "/addsvc/sum", r#"{"a":20,"b":22}"#);
        if got == (200, r#"{"v":42}"#.to_owned()) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the gateway answers {got:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn instances_from_dns_srv_records() {
    let svc = addsvc();
    let Some(dns) = dnsmasq::Dnsmasq::start(&[dnsmasq::srv("svc1", svc.http.port())]) else {
        return;
    };
    let gw = gateway(&[
        "-dns-addr",
        &dns.addr().to_string(),
        "-dns-domain",
        "kit.test",
    ]);
    answers(&gw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_from_zookeeper() {
    let Some(zk) = zk_server::ZooKeeper::start().await else {
        return;
    };
    let svc = addsvc();
    let registrar = ZkRegistrar::new(
        zk.servers(),
        "/services/addsvc/http",
        svc.http.to_string(),
        ZkOptions::new(),
    );
    registrar.register().await.unwrap();
    let gw = gateway(&["-zk-addr", &zk.endpoint()]);
    tokio::task::spawn_blocking(move || answers(&gw))
        .await
        .unwrap();
}

#[test]
fn addsvc_over_grpc_by_flag() {
    let svc = addsvc();
    let gw = gateway(&[
        "-addsvc",
        &svc.grpc.to_string(),
        "-addsvc-transport",
        "grpc",
    ]);
    answers(&gw);
    // A business error from the instance's gRPC reply comes back as go-kit's 400.
    assert_eq!(
        post(gw.http, "/addsvc/sum", r#"{"a":0,"b":0}"#),
        (400, r#"{"error":"can't sum two zeroes"}"#.to_owned())
    );
    assert_eq!(
        post(gw.http, "/addsvc/concat", r#"{"a":"x","b":"y"}"#),
        (200, r#"{"v":"xy"}"#.to_owned())
    );
}

#[test]
fn instances_from_consul() {
    let svc = addsvc();
    let consul = consul_server::Consul::start();
    consul.put(consul_server::Entry::new(
        "addsvc-1",
        "addsvc",
        "127.0.0.1",
        i64::from(svc.http.port()),
    ));
    let gw = gateway(&["-consul-addr", &consul.agent()]);
    answers(&gw);
}

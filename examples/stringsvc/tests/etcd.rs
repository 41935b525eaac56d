//! stringsvc built with `--features etcd`: `-etcd-addr` registers it in a real etcd, and a
//! SIGTERM takes it out again before it exits 0.
#![cfg(feature = "etcd")]

#[path = "../../../crates/kit-sd/tests/support/etcd.rs"]
mod etcd_server;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::GetOptions;
use etcd_server::Etcd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_while_running_and_deregisters_on_sigterm() {
    let Some(etcd) = Etcd::start().await else {
        return;
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_stringsvc"))
        .args(["--listen", "127.0.0.1:0", "--etcd-addr", &etcd.endpoint()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let listening = lines.next().unwrap().unwrap();
    let port = listening.rsplit(':').next().unwrap().trim().to_owned();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        "registered in etcd under /services/stringsvc/"
    );
    let client = etcd.client().await;
    let read = |mut client: etcd_client::Client| async move {
        let got = client
            .get(
                "/services/stringsvc/",
                Some(GetOptions::new().with_prefix()),
            )
            .await
            .unwrap();
        got.kvs()
            .iter()
            .map(|kv| {
                (
                    kv.key_str().unwrap().to_owned(),
                    kv.value_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let instance = format!("127.0.0.1:{port}");
    assert_eq!(
        read(client.clone()).await,
        [(
            format!("/services/stringsvc/http/{instance}"),
            instance.clone()
        )]
    );
    // SIGTERM: deregistered as the drain starts, then exit 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "stringsvc did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert_eq!(read(client.clone()).await, []);
    // An etcd that is not there fails the start, loudly.
    let out = Command::new(env!("CARGO_BIN_EXE_stringsvc"))
        .args(["--listen", "127.0.0.1:0", "--etcd-addr", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
}

//! The run group's signal handling, with real signals sent to this process.
//!
//! Signal handlers are process-wide: every group listening here sees every signal sent, so the
//! tests take turns (one test's second SIGINT once reached the other's group as a second signal).

use std::time::Duration;

use kit_core::Error;
use kit_server::{Group, RunError};

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn signals_start_the_drain() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut group = Group::new();
    group.stop_on_signals().unwrap();
    let stopping = group.stopping();
    group.spawn("server", async move {
        stopping.wait().await;
        Ok::<_, Error>(())
    });
    let run = tokio::spawn(group.run());
    tokio::time::sleep(Duration::from_millis(50)).await;
    // A real SIGTERM to this very process, as an orchestrator sends it.
    let pid = std::process::id().to_string();
    let killed = std::process::Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .unwrap();
    assert!(killed.success());
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the signal stops the group")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_second_signal_abandons_the_drain() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut group = Group::new().drain_deadline(Duration::from_secs(60));
    group.stop_on_signals().unwrap();
    group.spawn("stubborn", async {
        std::future::pending::<()>().await;
        Ok::<_, Error>(())
    });
    let run = tokio::spawn(group.run());
    let pid = std::process::id();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let sent = std::process::Command::new("sh")
            .args(["-c", &format!("kill -INT {pid}")])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    match tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("the second signal ends the run")
        .unwrap()
    {
        Err(RunError::Interrupted { still_running }) => assert_eq!(still_running, ["stubborn"]),
        other => panic!("{other:?}"),
    }
}

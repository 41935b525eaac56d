//! A real etcd for the tests: started on free loopback ports in a temp dir, stopped and started
//! again on the same data, killed and its dir removed on drop. Shared with the apigateway's
//! cluster test, which uses part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) struct Etcd {
    child: Option<Child>,
    dir: PathBuf,
    client_port: u16,
    peer_port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn binary() -> Option<PathBuf> {
    ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

impl Etcd {
    /// A running etcd, or `None` (with a visible skip line) when the binary is missing outside
    /// CI; under `CI=true` a missing binary fails the test.
    pub(crate) async fn start() -> Option<Etcd> {
        if binary().is_none() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("etcd is not installed (Debian etcd-server); CI must install it");
            }
            eprintln!("SKIP: etcd not installed (Debian etcd-server)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "kit-sd-etcd-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut etcd = Etcd {
            child: None,
            dir,
            client_port: 0,
            peer_port: 0,
        };
        // A port found free can be taken before etcd binds it (by another test's server, or as
        // the local port of an outgoing connection); etcd then exits at once, and a first start
        // tries fresh ports on fresh data.
        for _ in 0..5 {
            etcd.client_port = free_port();
            etcd.peer_port = free_port();
            let _ = std::fs::remove_dir_all(etcd.dir.join("data"));
            if etcd.spawn_and_wait().await {
                return Some(etcd);
            }
        }
        panic!("etcd exited at every start:\n{}", etcd.log());
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub(crate) fn endpoints(&self) -> Vec<String> {
        vec![self.endpoint()]
    }

    /// Starts again on the same ports and data, and waits until it answers; an early exit
    /// (a port taken while it was down) is tried again a few times.
    pub(crate) async fn run(&mut self) {
        for _ in 0..5 {
            if self.spawn_and_wait().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("etcd exited at every start:\n{}", self.log());
    }

    /// Spawns etcd and waits up to 30 s for it to answer: true once it does, false if it exits
    /// first; a panic, with its log, if it neither answers nor exits.
    async fn spawn_and_wait(&mut self) -> bool {
        let (cp, pp) = (self.client_port, self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))
            .unwrap();
        let child = Command::new(binary().unwrap())
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &format!("http://127.0.0.1:{cp}")])
            .args(["--advertise-client-urls", &format!("http://127.0.0.1:{cp}")])
            .args(["--listen-peer-urls", &format!("http://127.0.0.1:{pp}")])
            .args([
                "--initial-advertise-peer-urls",
                &format!("http://127.0.0.1:{pp}"),
            ])
            .args(["--initial-cluster", &format!("t=http://127.0.0.1:{pp}")])
            .args(["--heartbeat-interval=10", "--election-timeout=100"])
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "error",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().is_ok_and(|status| status.is_some())
            {
                self.child = None;
                return false;
            }
            let ask = async {
                let mut client = etcd_client::Client::connect(self.endpoints(), None).await?;
                client.get("ready", None).await
            };
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(2), ask).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "etcd did not come up on {} in 30 s:\n{}",
            self.endpoint(),
            self.log()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
    }

    /// Kills it (as a crash would) and waits for it to be gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub(crate) async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect(self.endpoints(), None)
            .await
            .unwrap()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

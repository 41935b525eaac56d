//! A real ZooKeeper (Debian `zookeeper`, on the installed Java) for the tests: started
//! standalone on a free loopback port in a temp dir, killed and started again on the same data,
//! killed and its dir removed on drop.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

const JAVA: &str = "/usr/bin/java";
const JAR: &str = "/usr/share/java/zookeeper.jar";
/// slf4j's simple binding, so that the server logs (to a file in the dir) instead of warning
/// that it has no binding; the jar's manifest brings the rest of the classpath.
const SLF4J_SIMPLE: &str = "/usr/share/java/slf4j-simple.jar";

pub(crate) struct ZooKeeper {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn installed() -> bool {
    Path::new(JAVA).exists() && Path::new(JAR).exists()
}

impl ZooKeeper {
    /// A running ZooKeeper, or `None` (with a visible skip line) when Java or the jar is
    /// missing outside CI; under `CI=true` a missing install fails the test.
    pub(crate) async fn start() -> Option<ZooKeeper> {
        if !installed() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("zookeeper is not installed (Debian zookeeper, Java); CI must install it");
            }
            eprintln!("SKIP: zookeeper not installed");
            return None;
        }
        let dir =
            std::env::temp_dir().join(format!("kit-sd-zk-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut zk = ZooKeeper {
            child: None,
            dir,
            port: 0,
        };
        // A port found free can be taken before the server binds it (by another test's server,
        // or as the local port of an outgoing connection); it then exits, and a first start
        // tries a fresh port.
        for _ in 0..5 {
            zk.port = free_port();
            zk.write_config();
            if zk.spawn_and_wait().await {
                return Some(zk);
            }
        }
        panic!("zookeeper exited at every start:\n{}", zk.log());
    }

    fn write_config(&self) {
        // tickTime 500 ms: session timeouts from 1 s to 10 s, short enough for tests.
        let config = format!(
            "tickTime=500\n\
             dataDir={}\n\
             clientPort={}\n\
             clientPortAddress=127.0.0.1\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=*\n\
             maxClientCnxns=0\n",
            self.dir.join("data").display(),
            self.port
        );
        std::fs::write(self.dir.join("zoo.cfg"), config).unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("zookeeper.log")).unwrap_or_default()
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub(crate) fn servers(&self) -> Vec<String> {
        vec![self.endpoint()]
    }

    /// Starts (again) on the same port and data, and waits until it serves (an early exit, a port
    /// taken while it was down, is tried again a few times): `ruok` answers
    /// `imok` as soon as the port is open, but sessions are refused ("ZooKeeperServer not
    /// running") for a moment more, until `srvr` reports a mode.
    pub(crate) async fn run(&mut self) {
        for _ in 0..5 {
            if self.spawn_and_wait().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("zookeeper exited at every start:\n{}", self.log());
    }

    /// Spawns the server and waits up to 30 s for it to serve: true once it does, false if it
    /// exits first; a panic, with its log, if it does neither.
    async fn spawn_and_wait(&mut self) -> bool {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("zookeeper.log"))
            .unwrap();
        let child = Command::new(JAVA)
            .args(["-Xmx128m", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-cp"])
            .arg(format!("{JAR}:{SLF4J_SIMPLE}"))
            .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
            .arg(self.dir.join("zoo.cfg"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("java starts");
        self.child = Some(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(child) = self.child.as_mut()
                && child.try_wait().is_ok_and(|status| status.is_some())
            {
                self.child = None;
                return false;
            }
            if self.four_letters("ruok").await.as_deref() == Some("imok")
                && self
                    .four_letters("srvr")
                    .await
                    .is_some_and(|answer| answer.contains("Mode: "))
            {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "zookeeper did not come up on {} in 30 s:\n{}",
            self.endpoint(),
            self.log()
        );
    }

    /// A four-letter command's answer, if any within a second.
    async fn four_letters(&self, command: &str) -> Option<String> {
        let ask = async {
            let mut conn = tokio::net::TcpStream::connect(self.endpoint()).await.ok()?;
            conn.write_all(command.as_bytes()).await.ok()?;
            let mut answer = Vec::new();
            conn.read_to_end(&mut answer).await.ok()?;
            String::from_utf8(answer).ok()
        };
        tokio::time::timeout(Duration::from_secs(1), ask)
            .await
            .ok()
            .flatten()
    }

    /// Kills it (SIGKILL, as a crash would) and waits for it to be gone.
    pub(crate) fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A plain client (a session of its own) for the test to look and write with.
    pub(crate) async fn client(&self) -> zookeeper_client::Client {
        zookeeper_client::Client::connect(&self.endpoint())
            .await
            .unwrap()
    }
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! A real dnsmasq for the DNS SRV tests: serves SRV records for `_addsvc._tcp.kit.test` from a
//! config in a temporary directory, on 127.0.0.1 and a free port (UDP and TCP), in the
//! foreground; killed and waited for on drop.
#![allow(dead_code)]

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The SRV name every config serves.
pub(crate) const SRV_NAME: &str = "_addsvc._tcp.kit.test";

/// One SRV record: `target.kit.test` on `port`, with the address 127.0.0.1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Srv {
    pub(crate) target: &'static str,
    pub(crate) port: u16,
    /// Whether the address comes with the SRV answer (a `host-record`, which dnsmasq adds to
    /// the additional section) or must be asked for (an `address=`, which it does not add).
    pub(crate) in_additional: bool,
}

/// A record whose target's address comes in the answer's additional section.
pub(crate) const fn srv(target: &'static str, port: u16) -> Srv {
    Srv {
        target,
        port,
        in_additional: true,
    }
}

/// A record whose target's address the client must look up.
pub(crate) const fn srv_lookup(target: &'static str, port: u16) -> Srv {
    Srv {
        target,
        port,
        in_additional: false,
    }
}

/// A running (or stopped) dnsmasq, owned by one test.
pub(crate) struct Dnsmasq {
    binary: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The TTL of every answer, in seconds (`local-ttl`).
    ttl: u32,
    child: Option<Child>,
}

/// Where dnsmasq is: on PATH, or in the sbin directories Debian installs it to (often not on a
/// user's PATH).
fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("dnsmasq"))
        .find(|candidate| candidate.is_file())
}

impl Dnsmasq {
    /// Starts dnsmasq serving `records` with TTL 1 s. Without dnsmasq: fails the test when
    /// `CI=true`, else prints a visible SKIP line and returns `None`.
    pub(crate) fn start(records: &[Srv]) -> Option<Dnsmasq> {
        Dnsmasq::start_with_ttl(records, 1)
    }

    /// The same, with answers valid for `ttl` seconds.
    pub(crate) fn start_with_ttl(records: &[Srv], ttl: u32) -> Option<Dnsmasq> {
        let Some(binary) = binary() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("dnsmasq not installed, and CI=true: install dnsmasq-base");
            }
            // Straight to the process's stderr: the test harness captures eprintln!.
            let _ = writeln!(std::io::stderr(), "SKIP: dnsmasq not installed");
            return None;
        };
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "kit-sd-dnsmasq-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("create the temp dir");
        let mut dns = Dnsmasq {
            binary,
            dir,
            port: 0,
            ttl,
            child: None,
        };
        dns.write_config(records);
        // A port found free can be taken before dnsmasq binds it (by another test, or as the
        // local port of an outgoing connection); dnsmasq then exits at once, and a first start
        // tries a fresh port.
        for _ in 0..5 {
            dns.port = free_port();
            if dns.try_spawn() {
                return Some(dns);
            }
        }
        panic!("dnsmasq exited at every start:\n{}", dns.log());
    }

    /// The address to give the resolver.
    pub(crate) fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Serves `records` from now on: rewrites the config and restarts on the same port
    /// (SIGHUP does not reload `srv-host`).
    pub(crate) fn replace(&mut self, records: &[Srv]) {
        self.stop();
        self.write_config(records);
        self.spawn();
    }

    /// Restarts on the same port with a config that has no `local=/kit.test/`, and no upstream
    /// server: dnsmasq then answers REFUSED at once to every query for the name.
    pub(crate) fn refuse(&mut self) {
        self.stop();
        let mut conf = File::create(self.dir.join("c.conf")).expect("write the config");
        writeln!(conf, "local-ttl={}", self.ttl).expect("write the config");
        drop(conf);
        self.spawn();
    }

    /// Kills dnsmasq and waits for it; the port is free until [`start_again`](Self::start_again).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts dnsmasq again, on the same port with the same config.
    pub(crate) fn start_again(&mut self) {
        self.stop();
        self.spawn();
    }

    /// How many SRV queries for [`SRV_NAME`] dnsmasq has logged, over all its runs.
    pub(crate) fn srv_queries(&self) -> usize {
        let needle = format!("query[SRV] {SRV_NAME} ");
        fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(&needle))
            .count()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("dnsmasq.log")
    }

    fn write_config(&self, records: &[Srv]) {
        let mut conf = String::new();
        for r in records {
            conf += &format!(
                "srv-host={SRV_NAME},{}.kit.test,{},0,10\n",
                r.target, r.port
            );
        }
        let mut seen = Vec::new();
        for r in records {
            if seen.contains(&r.target) {
                continue;
            }
            seen.push(r.target);
            if r.in_additional {
                conf += &format!("host-record={}.kit.test,127.0.0.1\n", r.target);
            } else {
                conf += &format!("address=/{}.kit.test/127.0.0.1\n", r.target);
            }
        }
        conf += &format!("local=/kit.test/\nlocal-ttl={}\n", self.ttl);
        fs::write(self.dir.join("c.conf"), conf).expect("write the config");
    }

    /// Starts dnsmasq on the config and waits until it listens; an early exit (the port taken
    /// while it was down) is tried again a few times.
    fn spawn(&mut self) {
        for _ in 0..5 {
            if self.try_spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "dnsmasq exited at every start on port {}:\n{}",
            self.port,
            self.log()
        );
    }

    /// What dnsmasq has logged over all its runs (its start-up, the queries it was asked).
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts dnsmasq and waits up to 5 s until it listens: true once it does, false if it
    /// exits first; a panic, with its log, if it does neither.
    fn try_spawn(&mut self) -> bool {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the log");
        // Foreground, only this config, no resolv.conf, no /etc/hosts, only 127.0.0.1, no pid
        // file, queries logged (-q) to stderr, which is the log file.
        let child = Command::new(&self.binary)
            .arg("-k")
            .arg("-C")
            .arg(self.dir.join("c.conf"))
            .args(["-R", "-h", "-n", "-q"])
            .args(["-p", &self.port.to_string()])
            .args(["-a", "127.0.0.1", "-z", "-x", "", "-8", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn dnsmasq");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if TcpStream::connect_timeout(&self.addr(), Duration::from_millis(100)).is_ok() {
                return true;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|child| child.try_wait().ok().flatten());
            if exited.is_some() {
                self.child = None;
                return false;
            }
            if Instant::now() > deadline {
                panic!(
                    "dnsmasq did not start on port {} in 5 s:\n{}",
                    self.port,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A port free for both UDP and TCP on 127.0.0.1 (the kernel picks the UDP one).
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket");
        let port = udp.local_addr().expect("its address").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}

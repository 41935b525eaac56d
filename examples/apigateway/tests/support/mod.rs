//! What the gateway's end-to-end tests share: the binaries, started on free loopback ports,
//! and a clean stop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The addsvc binary, next to the gateway's (built by cargo for the workspace's tests; built
/// here if this package's tests run alone).
pub(crate) fn addsvc_bin() -> String {
    let gateway = PathBuf::from(env!("CARGO_BIN_EXE_apigateway"));
    let addsvc = gateway.with_file_name("addsvc");
    if !addsvc.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "addsvc", "--bin", "addsvc"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building addsvc");
    }
    addsvc.to_string_lossy().into_owned()
}

pub(crate) struct Gateway {
    pub(crate) child: Child,
    pub(crate) http: SocketAddr,
    pub(crate) debug: SocketAddr,
    _logs: mpsc::Receiver<String>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway on free loopback ports with `extra` flags, once it has logged its addresses.
pub(crate) fn gateway(extra: &[&str]) -> Gateway {
    let mut child = Command::new(env!("CARGO_BIN_EXE_apigateway"))
        .args(["-http-addr", "127.0.0.1:0", "-debug.addr", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the gateway starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, logs) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut http, mut debug) = (None, None);
    while http.is_none() || debug.is_none() {
        let line = logs
            .recv_timeout(Duration::from_secs(20))
            .expect("the gateway logs its addresses");
        let addr = line
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix("addr="))
            .and_then(|a| a.parse::<SocketAddr>().ok());
        if line.contains("transport=HTTP ") {
            http = addr;
        } else if line.contains("transport=debug/HTTP") {
            debug = addr;
        }
    }
    Gateway {
        child,
        http: http.unwrap(),
        debug: debug.unwrap(),
        _logs: logs,
    }
}

/// SIGTERM, through sh's builtin kill.
pub(crate) fn sigterm(child: &Child) {
    let pid = child.id().to_string();
    assert!(
        Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap()
            .success()
    );
}

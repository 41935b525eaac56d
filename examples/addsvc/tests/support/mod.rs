//! Starting the real addsvc binary on free loopback ports, and plain HTTP/1.1 calls to it:
//! shared by the end-to-end tests.
#![allow(dead_code)]

pub(crate) mod gokit;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running addsvc and the addresses it logged.
pub(crate) struct Running {
    pub(crate) child: Child,
    pub(crate) logs: mpsc::Receiver<String>,
    pub(crate) debug: SocketAddr,
    pub(crate) http: SocketAddr,
    pub(crate) grpc: SocketAddr,
    pub(crate) jsonrpc: SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Kills addsvc if the test fails before it has a [`Running`].
struct KillOnDrop(Option<Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The transport and address of a "listening" log line, logfmt or JSON.
fn listening(line: &str) -> Option<(String, SocketAddr)> {
    if let Ok(record) = serde_json::from_str::<serde_json::Value>(line) {
        let transport = record["transport"].as_str()?.to_owned();
        return Some((transport, record["addr"].as_str()?.parse().ok()?));
    }
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key))
            .map(str::to_owned)
    };
    Some((field("transport=")?, field("addr=")?.parse().ok()?))
}

/// Starts the addsvc binary at `path` on free loopback ports, with `extra` flags.
pub(crate) fn start_bin(path: &str, extra: &[&str]) -> Running {
    let mut command = Command::new(path);
    command
        .args(["-debug.addr", "127.0.0.1:0", "-http-addr", "127.0.0.1:0"])
        .args(["-grpc-addr", "127.0.0.1:0", "-jsonrpc-addr", "127.0.0.1:0"])
        .args(extra);
    start_command(command, &["debug/HTTP", "HTTP", "gRPC", "JSONRPC"])
}

/// Starts `command` (an addsvc, or a peer logging listeners the same way) and waits for it to
/// log the addresses of `transports`; a transport it does not serve has an unspecified address.
pub(crate) fn start_command(mut command: Command, transports: &[&str]) -> Running {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the service starts");
    let mut guard = KillOnDrop(Some(child));
    let stderr = guard.0.as_mut().unwrap().stderr.take().unwrap();
    let (tx, logs) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut addrs = std::collections::HashMap::new();
    while addrs.len() < transports.len() {
        let line = logs
            .recv_timeout(Duration::from_secs(20))
            .expect("the service logs its listen addresses");
        if let Some((transport, addr)) = listening(&line) {
            addrs.insert(transport, addr);
        }
    }
    let addr = |transport| {
        addrs
            .get(transport)
            .copied()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
    };
    Running {
        child: guard.0.take().unwrap(),
        logs,
        debug: addr("debug/HTTP"),
        http: addr("HTTP"),
        grpc: addr("gRPC"),
        jsonrpc: addr("JSONRPC"),
    }
}

/// One HTTP/1.1 request on a new connection; the status and the body.
pub(crate) fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: addsvc\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // A server refusing a body (413) may answer and close before it is all sent.
    let _ = stream.write_all(body);
    read_response(&mut stream)
}

pub(crate) fn read_response(stream: &mut TcpStream) -> (u16, String) {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_owned())
}

pub(crate) fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    http(addr, "POST", path, body.as_bytes())
}

pub(crate) fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < within, "addsvc did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Zipkin collector's HTTP side on a thread: each POSTed body, as JSON.
pub(crate) fn collector() -> (SocketAddr, mpsc::Receiver<serde_json::Value>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut length = 0;
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        let header = header.trim_end().to_ascii_lowercase();
                        if header.is_empty() {
                            break;
                        }
                        if let Some(n) = header.strip_prefix("content-length:") {
                            length = n.trim().parse().unwrap();
                        }
                    }
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).unwrap();
                    let _ = tx.send(serde_json::from_slice(&body).unwrap());
                    reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                        .unwrap();
                }
            });
        }
    });
    (addr, rx)
}

//! stringsvc as a user runs it: the real binary on a free loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, serde_json::Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: s\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap())
}

#[test]
fn uppercase_and_count_and_their_errors() {
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_stringsvc"))
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stderr).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("stringsvc says where it listens");
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .parse()
        .unwrap();

    let json = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap();
    assert_eq!(
        post(addr, "/uppercase", r#"{"s":"hello"}"#),
        (200, json(r#"{"v":"HELLO"}"#))
    );
    assert_eq!(
        post(addr, "/count", r#"{"s":"hello"}"#),
        (200, json(r#"{"v":5}"#))
    );
    // Bytes, as go-kit counts them.
    assert_eq!(
        post(addr, "/count", r#"{"s":"héllo"}"#),
        (200, json(r#"{"v":6}"#))
    );
    // An absent member is empty, as in Go.
    assert_eq!(
        post(addr, "/count", r#"{"t":"x"}"#),
        (200, json(r#"{"v":0}"#))
    );
    let (status, body) = post(addr, "/uppercase", r#"{"s":""}"#);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("empty string"))
    );
    let (status, body) = post(addr, "/uppercase", "{nope");
    assert_eq!(status, 400, "{body}");
    let (status, _) = post(addr, "/count", r#"{"s":5}"#);
    assert_eq!(status, 400);
    assert_eq!(
        post(addr, "/count", r#"{"s":"ok"}"#).0,
        200,
        "still serving"
    );

    // SIGTERM: a clean drain, exit 0.
    let pid = child.0.id().to_string();
    assert!(
        Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap()
            .success()
    );
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "stringsvc did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
}

/// Kills stringsvc if the test fails before it exits.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

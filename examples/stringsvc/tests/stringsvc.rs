//! stringsvc as a user runs it: the real binary on a free loopback port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_stringsvc"))
        .args(["-listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
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
    assert_eq!(
        post(addr, "/count", r#"{"s":"héllo"}"#),
        (200, json(r#"{"v":5}"#))
    );
    let (status, body) = post(addr, "/uppercase", r#"{"s":""}"#);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("empty string"))
    );
    let (status, body) = post(addr, "/uppercase", "{nope");
    assert_eq!(status, 400, "{body}");
    let (status, _) = post(addr, "/count", r#"{"t":"x"}"#);
    assert_eq!(status, 400);
    assert_eq!(
        post(addr, "/count", r#"{"s":"ok"}"#).0,
        200,
        "still serving"
    );

    // SIGTERM: a clean drain, exit 0.
    let pid = child.id().to_string();
    assert!(
        Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

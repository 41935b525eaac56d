//! axumsvc as a user runs it: the real binary on a free loopback port, each of its routes and
//! each tower-http layer tried with a real request, then a real SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A response: status, headers (names lowercase), body.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn headers_named(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).unwrap()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {self:?}"))
    }
}

/// One HTTP/1.0 request (so the body ends where the connection does, never chunked).
fn call(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: t\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

/// The running binary, its address and what it has logged; killed if the test fails.
struct Running {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_axumsvc"))
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::clone(&log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.strip_prefix("listening on ") {
                let _ = tx.send(addr.parse::<SocketAddr>().unwrap());
            }
            lines.lock().unwrap().push(line);
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("axumsvc says where it listens");
    Running { child, addr, log }
}

#[test]
fn axum_handlers_kit_servers_and_tower_http_layers_in_one_app() {
    let mut svc = start(&["--timeout-ms", "300"]);
    let addr = svc.addr;

    // An ordinary axum handler.
    let hello = call(addr, "GET", "/hello/bob", &[], "");
    assert_eq!((hello.status, hello.text()), (200, "hello, bob"));

    // A kit Server mounted as an axum route: decoder, endpoint, encoder, error encoder and
    // hooks all as under kit's own router.
    let up = call(addr, "POST", "/uppercase", &[], r#"{"s":"hi"}"#);
    assert_eq!(up.status, 200);
    assert_eq!(up.json(), serde_json::json!({"v": "HI"}));
    assert_eq!(up.header("x-served-by"), Some("kit"));
    let empty = call(addr, "POST", "/uppercase", &[], r#"{"s":""}"#);
    assert_eq!(empty.status, 400);
    assert_eq!(empty.json(), serde_json::json!({"error": "empty string"}));
    let bad = call(addr, "POST", "/uppercase", &[], "{nope");
    assert_eq!(bad.status, 400, "{bad:?}");

    // A kit Router nested under /kit: its routes, its 404 and 405, below the prefix.
    let count = call(addr, "POST", "/kit/count", &[], r#"{"s":"hello"}"#);
    assert_eq!(count.json(), serde_json::json!({"v": 5}));
    let missing = call(addr, "POST", "/kit/nope", &[], "{}");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"], "no route for POST /nope");
    let wrong = call(addr, "GET", "/kit/count", &[], "");
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("POST")));
    // axum's own 404 outside both.
    assert_eq!(call(addr, "GET", "/elsewhere", &[], "").status, 404);

    // Compression: gzip when asked for, of a kit server's answer.
    let long = "a".repeat(2000);
    let zipped = call(
        addr,
        "POST",
        "/uppercase",
        &[("Accept-Encoding", "gzip")],
        &format!(r#"{{"s":"{long}"}}"#),
    );
    assert_eq!(
        zipped.header("content-encoding"),
        Some("gzip"),
        "{zipped:?}"
    );
    assert!(
        zipped.body.len() < 200,
        "compressed: {} bytes",
        zipped.body.len()
    );
    let mut unzipped = String::new();
    flate2::read::GzDecoder::new(&zipped.body[..])
        .read_to_string(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, format!(r#"{{"v":"{}"}}"#, long.to_uppercase()));
    let plain = call(
        addr,
        "POST",
        "/uppercase",
        &[],
        &format!(r#"{{"s":"{long}"}}"#),
    );
    assert_eq!(plain.header("content-encoding"), None);

    // CORS: a preflight is answered by the layer (kit's router would say 405 to OPTIONS).
    let preflight = call(
        addr,
        "OPTIONS",
        "/kit/count",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    );
    assert_eq!(preflight.status, 200, "{preflight:?}");
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert!(preflight.header("access-control-allow-methods").is_some());

    // Request ids: minted when absent, the client's kept, one header either way (kit's server
    // echoes the same id the layer set).
    let minted = call(addr, "POST", "/uppercase", &[], r#"{"s":"x"}"#);
    let id = minted.header("x-request-id").expect("an id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert_eq!(minted.headers_named("x-request-id"), 1);
    let kept = call(
        addr,
        "POST",
        "/kit/count",
        &[("X-Request-Id", "req-42")],
        r#"{"s":"x"}"#,
    );
    assert_eq!(kept.header("x-request-id"), Some("req-42"));
    assert_eq!(kept.headers_named("x-request-id"), 1);

    // The timeout: 408 once the request takes longer than --timeout-ms.
    let slow = call(addr, "POST", "/kit/sleep", &[], r#"{"ms":5000}"#);
    assert_eq!(slow.status, 408, "{slow:?}");
    let quick = call(addr, "POST", "/kit/sleep", &[], r#"{"ms":1}"#);
    assert_eq!(quick.json(), serde_json::json!({"v": 1}));

    // SIGTERM: kit's listener drains and the process exits 0.
    let killed = Command::new("kill")
        .args(["-TERM", &svc.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = svc.child.wait().unwrap();
    assert!(status.success(), "{status}");

    // The trace layer's events, as kit-log lines.
    std::thread::sleep(Duration::from_millis(100));
    let log = svc.log.lock().unwrap().join("\n");
    assert!(
        log.contains(r#"msg="finished processing request" target=tower_http::trace::on_response"#),
        "{log}"
    );
    assert!(log.contains("status=408"), "{log}");
    assert!(log.contains("msg=stopped"), "{log}");
}

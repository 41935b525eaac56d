//! The go-kit peer (tests/gokit/peer.go): built from Debian's Go packages, started as a server,
//! or run as go-kit's clients; and a TCP relay that records what crosses it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

use super::{Running, start_command};

const PEER_GO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/gokit/peer.go");
const PROTO_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto");
/// Debian's Go source tree (golang-github-go-kit-kit-dev and the others put theirs here).
const GOCODE: &str = "/usr/share/gocode";

/// What building the peer needs, with the Debian package that brings it.
const NEEDS: &[(&str, &str)] = &[
    ("/usr/bin/go", "golang-go"),
    ("/usr/bin/protoc", "protobuf-compiler"),
    ("/usr/bin/protoc-gen-go", "golang-goprotobuf-dev"),
    (
        "/usr/share/gocode/src/github.com/go-kit/kit/transport/http/jsonrpc",
        "golang-github-go-kit-kit-dev",
    ),
    (
        "/usr/share/gocode/src/google.golang.org/grpc",
        "golang-google-grpc-dev",
    ),
    (
        "/usr/share/gocode/src/github.com/openzipkin/zipkin-go/reporter/http",
        "golang-github-openzipkin-zipkin-go-dev",
    ),
];

/// The peer's binary, built once per test process (and kept in the target directory, keyed by
/// its sources, across runs). `None` with a SKIP line when Go or go-kit is not installed;
/// under `CI=true` that fails the test instead.
pub(crate) fn peer() -> Option<&'static Path> {
    static PEER: OnceLock<Option<PathBuf>> = OnceLock::new();
    PEER.get_or_init(|| {
        let missing: Vec<&str> = NEEDS
            .iter()
            .filter(|(path, _)| !Path::new(path).exists())
            .map(|(_, package)| *package)
            .collect();
        if !missing.is_empty() {
            let why = format!("the go-kit peer needs Debian's {}", missing.join(", "));
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{why} (bash .ci/install installs them)"
            );
            eprintln!("SKIP: {why}");
            return None;
        }
        Some(build())
    })
    .as_deref()
}

fn build() -> PathBuf {
    let source = std::fs::read(PEER_GO).unwrap();
    let proto = std::fs::read(Path::new(PROTO_DIR).join("addsvc.proto")).unwrap();
    // FNV-1a of the sources: a changed peer is rebuilt, an unchanged one reused.
    let hash = source
        .iter()
        .chain(&proto)
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        });
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("gokit");
    let binary = dir.join(format!("peer-{hash:016x}"));
    if binary.exists() {
        return binary;
    }
    // GOPATH mode, offline: the peer's package and its generated pb under a GOPATH of its own,
    // Debian's tree second.
    let gopath = dir.join(format!("gopath-{hash:016x}"));
    let package = gopath.join("src/peer");
    std::fs::create_dir_all(package.join("pb")).unwrap();
    std::fs::write(package.join("peer.go"), &source).unwrap();
    run(Command::new("protoc")
        .arg(format!("-I{PROTO_DIR}"))
        .arg(format!(
            "--go_out=plugins=grpc:{}",
            package.join("pb").display()
        ))
        .arg("addsvc.proto"));
    run(Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(".")
        .current_dir(&package)
        .env("GO111MODULE", "off")
        .env("GOFLAGS", "")
        .env("GOPATH", format!("{}:{GOCODE}", gopath.display()))
        .env("GOCACHE", dir.join("cache")));
    binary
}

fn run(command: &mut Command) {
    let output = command.output().expect("the Go toolchain runs");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The peer serving go-kit's addsvc over HTTP, gRPC and JSON-RPC on free loopback ports,
/// tracing to `zipkin_url` when given. Its `debug` address is unspecified (it has none).
pub(crate) fn serve(peer: &Path, zipkin_url: Option<&str>) -> Running {
    let mut command = Command::new(peer);
    command.arg("serve");
    if let Some(url) = zipkin_url {
        command.args(["-zipkin-url", url]);
    }
    start_command(command, &["HTTP", "gRPC", "JSONRPC"])
}

/// go-kit's client for `transport` ("http", "grpc", "jsonrpc") calling `addr` once per entry of
/// `calls` (`["sum",1,2]`, `["concat","a","b"]`): the peer's answer line for each, as JSON
/// (`{"v":..}` or `{"err":..,"via":..,"code":..}`, and the call's `trace` id when tracing).
pub(crate) fn call(
    peer: &Path,
    transport: &str,
    addr: SocketAddr,
    zipkin_url: Option<&str>,
    calls: &[serde_json::Value],
) -> Vec<serde_json::Value> {
    let mut command = Command::new(peer);
    command.args(["call", "-transport", transport, "-addr", &addr.to_string()]);
    if let Some(url) = zipkin_url {
        command.args(["-zipkin-url", url]);
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = calls.iter().map(|c| format!("{c}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the go-kit client failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(answers.len(), calls.len(), "one answer per call");
    answers
}

/// A TCP relay to `target` on a free loopback port, recording each connection's bytes in both
/// directions.
pub(crate) struct Relay {
    pub(crate) addr: SocketAddr,
    seen: Arc<Mutex<Vec<Exchange>>>,
}

/// What one connection through a [`Relay`] carried.
#[derive(Clone, Debug, Default)]
pub(crate) struct Exchange {
    /// From the client to the server.
    pub(crate) sent: Vec<u8>,
    /// From the server back to the client.
    pub(crate) answered: Vec<u8>,
}

impl Relay {
    pub(crate) fn to(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let exchanges = Arc::clone(&seen);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let server = TcpStream::connect(target).unwrap();
                let index = {
                    let mut all = exchanges.lock().unwrap();
                    all.push(Exchange::default());
                    all.len() - 1
                };
                for (mut from, mut to, upstream) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let exchanges = Arc::clone(&exchanges);
                    std::thread::spawn(move || {
                        let mut buf = [0; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            {
                                let mut all = exchanges.lock().unwrap();
                                let exchange = &mut all[index];
                                match upstream {
                                    true => exchange.sent.extend_from_slice(&buf[..n]),
                                    false => exchange.answered.extend_from_slice(&buf[..n]),
                                }
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Relay { addr, seen }
    }

    /// Every connection's bytes so far.
    pub(crate) fn exchanges(&self) -> Vec<Exchange> {
        self.seen.lock().unwrap().clone()
    }
}

/// An HTTP/1.1 message's head lines (first line, then headers, names lowercased) and body,
/// from the front of `bytes` (a Content-Length or a chunked body).
pub(crate) fn http_message(bytes: &[u8]) -> (Vec<String>, Vec<u8>) {
    let text = String::from_utf8_lossy(bytes);
    let (head, _) = text.split_once("\r\n\r\n").expect("a complete head");
    let lines: Vec<String> = head
        .lines()
        .enumerate()
        .map(|(i, line)| match (i, line.split_once(':')) {
            (0, _) | (_, None) => line.to_owned(),
            (_, Some((name, value))) => format!("{}: {}", name.to_ascii_lowercase(), value.trim()),
        })
        .collect();
    let mut rest = &bytes[head.len() + 4..];
    if lines.iter().any(|l| l == "transfer-encoding: chunked") {
        let mut body = Vec::new();
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap(), 16).unwrap();
            rest = &rest[end + 2..];
            if size == 0 {
                return (lines, body);
            }
            body.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
    }
    let length: usize = lines
        .iter()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map_or(0, |n| n.parse().unwrap());
    (lines, rest[..length].to_vec())
}

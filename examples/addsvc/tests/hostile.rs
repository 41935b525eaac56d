//! Hostile clients against the real addsvc binary with its default limits: slow headers, a body
//! over the limit sent chunked, a never-ending chunked body, 10,000 idle connections, HTTP/2
//! rapid reset, header floods over HTTP/1.1 and HTTP/2, and oversized gRPC metadata. Throughout
//! each attack, well-formed requests keep being answered; their latency beside an unloaded run
//! is printed (`cargo test -p addsvc --test hostile -- --nocapture`) and recorded in
//! docs/RELIABILITY.md.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Running, post, start_bin};

fn start() -> Running {
    start_bin(env!("CARGO_BIN_EXE_addsvc"), &[])
}

/// `n` well-formed calls, one after another, each on a new connection: every one must be
/// answered `{"v":3}`; their latencies, sorted.
fn probe(addr: SocketAddr, n: usize) -> Vec<Duration> {
    let mut took: Vec<Duration> = (0..n)
        .map(|_| {
            let start = Instant::now();
            assert_eq!(
                post(addr, "/sum", r#"{"a":1,"b":2}"#),
                (200, r#"{"v":3}"#.to_owned()),
                "a well-formed call during the attack"
            );
            start.elapsed()
        })
        .collect();
    took.sort();
    took
}

/// Prints the probe latencies under attack beside the unloaded ones.
fn report(attack: &str, unloaded: &[Duration], attacked: &[Duration]) {
    let at = |v: &[Duration], q: f64| v[((v.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{attack}: well-formed calls p50 {:?} p99 {:?} under attack, {:?} {:?} unloaded",
        at(attacked, 0.5),
        at(attacked, 0.99),
        at(unloaded, 0.5),
        at(unloaded, 0.99),
    );
}

/// The attacker's side: `started` once the attack is in place, then `stop` when the probes
/// are done.
struct Attack {
    stop: Arc<AtomicBool>,
    started: std::sync::mpsc::Sender<()>,
}

impl Attack {
    fn started(&self) {
        let _ = self.started.send(());
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn wait_for_stop(&self) {
        while !self.stopped() {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs `attack` on a thread; once it says it has started, probes, then tells it to stop.
fn under_attack(svc: &Running, name: &str, attack: impl FnOnce(Attack) + Send + 'static) {
    let unloaded = probe(svc.http, 100);
    let stop = Arc::new(AtomicBool::new(false));
    let (started, has_started) = std::sync::mpsc::channel();
    let attacker = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || attack(Attack { stop, started }))
    };
    has_started
        .recv_timeout(Duration::from_secs(60))
        .expect("the attack starts");
    let attacked = probe(svc.http, 100);
    stop.store(true, Ordering::SeqCst);
    attacker.join().expect("the attacker's own checks");
    report(name, &unloaded, &attacked);
    // And after it.
    probe(svc.http, 10);
}

fn read_all(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let _ = stream.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn slow_headers_are_cut_off_and_others_are_served_meanwhile() {
    let svc = start();
    let addr = svc.http;
    under_attack(&svc, "200 slow headers", move |attack| {
        let mut slow: Vec<TcpStream> = (0..200)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"POST /sum HTTP/1.1\r\nHost: a\r\nContent-Le")
                    .unwrap();
                s
            })
            .collect();
        attack.started();
        attack.wait_for_stop();
        // The header timeout (10 s) closes every one of them.
        for s in &mut slow {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let answer = read_all(s);
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
                "{answer:?}"
            );
        }
    });
}

#[test]
fn bodies_over_the_limit_sent_chunked_get_413_even_when_they_never_end() {
    let svc = start();
    let addr = svc.http;
    under_attack(&svc, "never-ending chunked bodies", move |attack| {
        // 2 MiB sent chunked, no length given up front.
        let mut big = TcpStream::connect(addr).unwrap();
        big.write_all(b"POST /sum HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "1".repeat(64 * 1024));
        for _ in 0..32 {
            if big.write_all(chunk.as_bytes()).is_err() {
                break;
            }
        }
        let _ = big.write_all(b"0\r\n\r\n");
        let answer = read_all(&mut big);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
        // Chunks for as long as the server takes them: it answers 413 past 1 MiB and closes.
        let mut endless = TcpStream::connect(addr).unwrap();
        endless
            .write_all(b"POST /sum HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        attack.started();
        let mut sent = 0usize;
        while !attack.stopped() && endless.write_all(chunk.as_bytes()).is_ok() {
            sent += chunk.len();
            assert!(sent < 1 << 30, "the server took 1 GiB");
        }
        endless
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let answer = read_all(&mut endless);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    });
}

/// The soft limit on open files of this process (addsvc inherits it).
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap_or(u64::MAX)
}

#[test]
fn ten_thousand_idle_connections_do_not_stop_the_service() {
    let limit = open_files_limit();
    if limit < 10_500 {
        let why = format!("10,000 connections need 10,500 open files; the limit is {limit}");
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{why}");
        eprintln!("SKIP: {why}");
        return;
    }
    let svc = start();
    let addr = svc.http;
    under_attack(&svc, "10,000 idle connections", move |attack| {
        let start = Instant::now();
        let mut retransmitted = 0;
        let idle: Vec<TcpStream> = (0..10_000)
            .map(|_| {
                let connecting = Instant::now();
                let stream = TcpStream::connect(addr).unwrap();
                // A connection that took a second had its SYN dropped and sent again: the
                // listen backlog overflowed (tokio's default of 128 made that one in 200).
                if connecting.elapsed() >= Duration::from_millis(900) {
                    retransmitted += 1;
                }
                stream
            })
            .collect();
        eprintln!(
            "10,000 connections open in {:?}, {retransmitted} SYNs sent again",
            start.elapsed()
        );
        assert!(retransmitted <= 5, "{retransmitted} SYNs sent again");
        attack.started();
        attack.wait_for_stop();
        drop(idle);
    });
}

#[test]
fn header_floods_get_431_or_a_reset_and_others_are_served() {
    let svc = start();
    let (addr, grpc) = (svc.http, svc.grpc);
    under_attack(&svc, "header floods", move |attack| {
        // HTTP/1.1: one 100 KiB header, and 5,000 small ones.
        for head in [
            format!("X-Big: {}\r\n", "a".repeat(100 * 1024)),
            (0..5000).map(|i| format!("X-H{i}: v\r\n")).collect(),
        ] {
            let mut s = TcpStream::connect(addr).unwrap();
            let _ = s.write_all(format!("POST /sum HTTP/1.1\r\nHost: a\r\n{head}\r\n").as_bytes());
            let answer = read_all(&mut s);
            assert!(
                answer.starts_with("HTTP/1.1 431"),
                "{:?}",
                &answer[..answer.len().min(80)]
            );
        }
        // HTTP/2 and gRPC: a header list far over the 64 KiB advertised, and gRPC metadata of
        // 100 KiB: refused, the connection's other streams and the server unharmed.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            for (target, path, content_type) in [
                (addr, "/sum", "application/json"),
                (grpc, "/pb.Add/Sum", "application/grpc"),
            ] {
                let tcp = tokio::net::TcpStream::connect(target).await.unwrap();
                let (send, connection) = h2::client::handshake(tcp).await.unwrap();
                tokio::spawn(connection);
                let request = http::Request::post(path)
                    .header("content-type", content_type)
                    .header("x-big-bin", "a".repeat(100 * 1024))
                    .body(())
                    .unwrap();
                let mut ready = send.ready().await.unwrap();
                let refused = match ready.send_request(request, true) {
                    Err(_) => true,
                    Ok((response, _)) => match response.await {
                        Err(_) => true,
                        Ok(response) => response.status() == 431,
                    },
                };
                assert!(refused, "{path}: a 100 KiB header is refused");
            }
        });
        attack.started();
        attack.wait_for_stop();
    });
}

#[test]
fn http2_rapid_reset_does_not_stop_the_service() {
    let svc = start();
    let (addr, grpc) = (svc.http, svc.grpc);
    under_attack(&svc, "HTTP/2 rapid reset", move |attack| {
        // CVE-2023-44487: streams opened and cancelled at once, as fast as the client can.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut opened = 0u32;
            attack.started();
            'attack: while !attack.stopped() {
                for (target, path, content_type) in [
                    (addr, "/sum", "application/json"),
                    (grpc, "/pb.Add/Sum", "application/grpc"),
                ] {
                    let Ok(tcp) = tokio::net::TcpStream::connect(target).await else {
                        continue;
                    };
                    let Ok((send, connection)) = h2::client::handshake(tcp).await else {
                        continue;
                    };
                    let connection = tokio::spawn(connection);
                    for _ in 0..1000 {
                        let request = http::Request::post(path)
                            .header("content-type", content_type)
                            .body(())
                            .unwrap();
                        let Ok(mut ready) = send.clone().ready().await else {
                            break;
                        };
                        let Ok((_, mut stream)) = ready.send_request(request, false) else {
                            break;
                        };
                        stream.send_reset(h2::Reason::CANCEL);
                        opened += 1;
                        if attack.stopped() {
                            connection.abort();
                            break 'attack;
                        }
                    }
                    connection.abort();
                }
            }
            assert!(opened > 1000, "the attack ran: {opened} streams");
        });
    });
}

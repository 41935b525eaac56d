//! The listener's limits and drain: slow clients are dropped after the header timeout while
//! others are served, and a graceful shutdown finishes in-flight requests.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::Method;
use kit_core::{Context, Endpoint, Error, endpoint_fn};
use kit_transport_http::{Client, ClientPool, Listener, Router, Server, json};
use support::{Running, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn slow_router(delay: Duration, started: Arc<AtomicUsize>) -> Router {
    let slow = endpoint_fn(move |_cx, n: u64| {
        let started = Arc::clone(&started);
        async move {
            started.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            Ok::<_, Error>(n)
        }
    });
    Router::new().post(
        "/slow",
        Server::new(slow, json::decode_request, json::encode_response),
    )
}

/// Reads until the server closes the connection; fails the test if it never does.
async fn closed_by_server(mut stream: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut got))
        .await
        .expect("the server closes the connection")
        .ok();
    got
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped_after_the_timeout() {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .header_read_timeout(Duration::from_millis(300));
    let running = Running::start(listener, slow_router(Duration::ZERO, Arc::default())).await;

    // Half a request head, then silence; and a connection that sends nothing at all.
    let mut partial = TcpStream::connect(running.addr).await.unwrap();
    partial
        .write_all(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Le")
        .await
        .unwrap();
    let silent = TcpStream::connect(running.addr).await.unwrap();

    // Meanwhile others are served.
    let ok = post(running.addr, "/slow", "application/json", "7").await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "7"));

    let answer = closed_by_server(partial).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(closed_by_server(silent).await.is_empty());

    let ok = post(running.addr, "/slow", "application/json", "8").await;
    assert_eq!(ok.body, "8");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn every_head_on_a_kept_alive_connection_is_timed_from_when_it_is_awaited() {
    // The connection's stream times its waits for a head (src/head_deadline.rs), ticking
    // through a quick request and through one slower than the timeout; each time the next head
    // still gets the whole timeout, and at most half of it more.
    let timeout = Duration::from_millis(300);
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .header_read_timeout(timeout);
    let sleepy = endpoint_fn(|_cx, millis: u64| async move {
        tokio::time::sleep(Duration::from_millis(millis)).await;
        Ok::<_, Error>(millis)
    });
    let router = Router::new().post(
        "/sleep",
        Server::new(sleepy, json::decode_request, json::encode_response),
    );
    let running = Running::start(listener, router).await;
    let mut stream = TcpStream::connect(running.addr).await.unwrap();
    let mut answered = tokio::time::Instant::now();
    for millis in ["0", "500", "0"] {
        let request = format!(
            "POST /sleep HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{millis}",
            millis.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        while !(got.starts_with(b"HTTP/1.1 200") && got.ends_with(millis.as_bytes())) {
            let mut chunk = [0; 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&chunk[..n]);
        }
        answered = tokio::time::Instant::now();
    }
    stream
        .write_all(b"POST /sleep HTTP/1.1\r\nHo")
        .await
        .unwrap();
    let answer = closed_by_server(stream).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    // The timer starts when hyper starts waiting for the head, just before the answer arrives.
    let waited = answered.elapsed();
    assert!(
        waited >= timeout - Duration::from_millis(20)
            && waited <= timeout * 3 / 2 + Duration::from_secs(1),
        "closed after {waited:?}"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests_then_refuses_new_ones() {
    let started = Arc::new(AtomicUsize::new(0));
    let running = Running::serve(slow_router(
        Duration::from_millis(500),
        Arc::clone(&started),
    ))
    .await;
    let addr = running.addr;
    let client = Client::new(
        Method::POST,
        running.url("/slow"),
        json::encode_request,
        json::decode_response::<u64>,
    );
    let h2 = client.clone().pool(ClientPool::http2());
    let calls: Vec<_> = (0..20u64)
        .map(|n| {
            let client = if n % 2 == 0 {
                client.clone()
            } else {
                h2.clone()
            };
            tokio::spawn(async move { client.call(Context::new(), n).await })
        })
        .collect();
    // All twenty are in the endpoint before the shutdown starts.
    while started.load(Ordering::SeqCst) < 20 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    running
        .stop()
        .await
        .expect("drained within the drain timeout");
    for (n, call) in calls.into_iter().enumerate() {
        assert_eq!(call.await.unwrap().unwrap(), n as u64);
    }
    assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
}

#[tokio::test]
async fn a_drain_that_outlasts_its_timeout_is_reported() {
    let started = Arc::new(AtomicUsize::new(0));
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .drain_timeout(Duration::from_millis(100));
    let running = Running::start(
        listener,
        slow_router(Duration::from_secs(3600), Arc::clone(&started)),
    )
    .await;
    let addr = running.addr;
    let stuck = tokio::spawn(async move { post(addr, "/slow", "application/json", "1").await });
    while started.load(Ordering::SeqCst) < 1 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let err = running.stop().await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    stuck.abort();
}

#[tokio::test]
async fn idle_and_silent_connections_do_not_hold_up_the_drain() {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        // Far longer than the test may take: the drain must not wait for these to time out.
        .header_read_timeout(Duration::from_secs(3600))
        .handshake_timeout(Duration::from_secs(3600))
        .drain_timeout(Duration::from_secs(3600));
    let running = Running::start(listener, slow_router(Duration::ZERO, Arc::default())).await;
    let mut idle = TcpStream::connect(running.addr).await.unwrap();
    idle.write_all(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n5")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(answer[..n].starts_with(b"HTTP/1.1 200"));
    let silent = TcpStream::connect(running.addr).await.unwrap();
    // Let the listener accept the silent one before the drain starts.
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::time::timeout(Duration::from_secs(30), running.stop())
        .await
        .expect("the drain ends without waiting for idle connections")
        .unwrap();
    assert!(closed_by_server(idle).await.is_empty());
    assert!(closed_by_server(silent).await.is_empty());
}

#[tokio::test]
async fn a_partial_http2_preface_is_closed_after_the_handshake_timeout() {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .handshake_timeout(Duration::from_millis(300));
    let running = Running::start(listener, slow_router(Duration::ZERO, Arc::default())).await;
    // hyper learns the protocol from the first 24 bytes and has no timeout until it has.
    let mut partial = TcpStream::connect(running.addr).await.unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    assert!(closed_by_server(partial).await.is_empty());
    let ok = post(running.addr, "/slow", "application/json", "3").await;
    assert_eq!(ok.body, "3");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn at_the_connection_cap_accepting_waits_until_one_closes() {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .max_connections(1);
    let running = Running::start(listener, slow_router(Duration::ZERO, Arc::default())).await;
    // A connection that sends nothing holds the only place (for the 10 s header timeout).
    let holder = TcpStream::connect(running.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = running.addr;
    let waiting = tokio::spawn(async move { post(addr, "/slow", "application/json", "4").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "not accepted while at the cap");
    drop(holder);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("accepted once a place is free")
        .unwrap();
    assert_eq!(answer.body, "4");
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_client_that_never_reads_its_response_is_dropped_after_the_write_timeout() {
    // 64 MiB answers: far more than the socket buffers hold.
    let big = endpoint_fn(|_cx, ()| async move { Ok::<_, Error>(vec![b'x'; 64 << 20]) });
    let router = Router::new().get(
        "/big",
        Server::new(
            big,
            |_cx, _r: &http::Request<bytes::Bytes>| Ok(()),
            |_cx, body: Vec<u8>| Ok(http::Response::new(bytes::Bytes::from(body))),
        ),
    );
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .write_timeout(Duration::from_millis(300))
        .drain_timeout(Duration::from_secs(3600));
    let running = Running::start(listener, router).await;
    let mut reader = TcpStream::connect(running.addr).await.unwrap();
    reader
        .write_all(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // Never read: the server's writes stall, then fail, and the connection is closed, so the
    // drain (an hour allowed) ends at once.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    tokio::time::timeout(Duration::from_secs(10), running.stop())
        .await
        .expect("the stalled connection is gone")
        .unwrap();
    drop(reader);
}

#[tokio::test]
async fn a_body_sent_too_slowly_gets_408_and_the_server_keeps_serving() {
    let slow = endpoint_fn(|_cx, n: u64| async move { Ok::<_, Error>(n) });
    let router = Router::new().post(
        "/echo",
        Server::new(slow, json::decode_request, json::encode_response).options(
            kit_transport_http::ServerOptions::new().body_read_timeout(Duration::from_millis(300)),
        ),
    );
    let running = Running::serve(router).await;
    let mut slow = TcpStream::connect(running.addr).await.unwrap();
    slow.write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12")
        .await
        .unwrap();
    // The rest of the body never comes.
    let answer = closed_or_answered(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("did not arrive within"), "{answer:?}");
    let ok = post(running.addr, "/echo", "application/json", "9").await;
    assert_eq!(ok.body, "9");
    running.stop().await.unwrap();
}

/// What the server sends before it closes or goes quiet for a second.
async fn closed_or_answered(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n @ 1..)) =
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await
    {
        got.extend_from_slice(&buf[..n]);
        if got.windows(4).any(|w| w == b"\r\n\r\n") {
            // Headers and (small) body: wait briefly for the rest.
            if let Ok(Ok(n @ 1..)) =
                tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await
            {
                got.extend_from_slice(&buf[..n]);
            }
            break;
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// An HTTP/2 connection that never answers a ping: the preface and empty SETTINGS, then only
/// reading. `true` when the server closed it within `within`.
async fn unanswered_pings_close(addr: std::net::SocketAddr, within: Duration) -> bool {
    let mut h2 = TcpStream::connect(addr).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // A SETTINGS frame: length 0, type 4, no flags, stream 0.
    h2.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0]).await.unwrap();
    let mut buf = vec![0; 4096];
    let read_all = async {
        loop {
            match h2.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, read_all).await.is_ok()
}

#[tokio::test]
async fn an_http2_client_that_never_answers_pings_is_closed_after_the_keep_alive_timeout() {
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .http2_keep_alive(Duration::from_millis(200), Duration::from_millis(200));
    let running = Running::start(listener, slow_router(Duration::ZERO, Arc::default())).await;
    assert!(unanswered_pings_close(running.addr, Duration::from_secs(5)).await);
    running.stop().await.unwrap();
    // With the defaults (no pings), the same connection is still open 2 s later.
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let running = Running::start(listener, slow_router(Duration::ZERO, Arc::default())).await;
    assert!(!unanswered_pings_close(running.addr, Duration::from_secs(2)).await);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn connections_get_tcp_keep_alive_from_the_listener_unless_it_is_turned_off() {
    for (idle, expected) in [
        (None, Some(Duration::from_secs(30))),
        (
            Some(Some(Duration::from_secs(45))),
            Some(Duration::from_secs(45)),
        ),
        (Some(None), None),
    ] {
        let mut listener = Listener::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        if let Some(idle) = idle {
            listener = listener.tcp_keep_alive(idle);
        }
        let running = Running::start(listener, slow_router(Duration::ZERO, Arc::default())).await;
        // One request answered: the listener is serving, its socket set, before the connection
        // looked at is made (a connection inherits the listening socket's options on arrival).
        assert_eq!(
            post(running.addr, "/slow", "application/json", "7")
                .await
                .status,
            200
        );
        let idle_client = TcpStream::connect(running.addr).await.unwrap();
        let timer = support::keep_alive_timer(running.addr, idle_client.local_addr().unwrap());
        match (timer, expected) {
            (None, None) => {}
            // The first probe is due `idle` after the last packet, a moment ago.
            (Some(left), Some(idle)) => assert!(
                left <= idle && left > idle - Duration::from_secs(5),
                "{left:?} left of {idle:?}"
            ),
            other => panic!("{idle:?}: timer and expected idle time {other:?}"),
        }
        running.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_head_over_the_limit_gets_431_however_it_arrives_and_one_under_it_is_served() {
    // The default limit, 64 KiB.
    let running = Running::serve(slow_router(Duration::ZERO, Arc::default())).await;
    let head = |padding: usize| {
        format!(
            "POST /slow HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\nContent-Length: 1\r\n\r\n7",
            "p".repeat(padding)
        )
    };
    // Whole in one write, in 1 KiB pieces, and in two halves: hyper's own check sees a head
    // still incomplete at the limit, the listener's a head read whole past it.
    let cases = [
        (63 * 1024, "200"),
        (65 * 1024, "431"),
        (70 * 1024, "431"),
        (100 * 1024, "431"),
    ];
    for (padding, status) in cases {
        let request = head(padding);
        for pieces in [1, request.len().div_ceil(1024), 2] {
            let mut stream = TcpStream::connect(running.addr).await.unwrap();
            let piece = request.len().div_ceil(pieces);
            for chunk in request.as_bytes().chunks(piece) {
                // The server may answer and close before the last pieces.
                if stream.write_all(chunk).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let answer = closed_or_answered(&mut stream).await;
            let case = format!("{padding} bytes of padding in {pieces} pieces: {answer:?}");
            assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{case}");
            if status == "431" {
                assert!(
                    answer.ends_with(r#"{"error":"request header fields too large"}"#),
                    "{case}"
                );
            }
        }
    }
    let ok = post(running.addr, "/slow", "application/json", "7").await;
    assert_eq!((ok.status, ok.body.as_str()), (200, "7"));
    running.stop().await.unwrap();

    // A limit below hyper's smallest read buffer (8 KiB) holds too.
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .max_header_bytes(4 * 1024);
    let running = Running::start(listener, slow_router(Duration::ZERO, Arc::default())).await;
    for (padding, status) in [(3 * 1024, "HTTP/1.1 200"), (5 * 1024, "HTTP/1.1 431")] {
        let mut stream = TcpStream::connect(running.addr).await.unwrap();
        stream.write_all(head(padding).as_bytes()).await.unwrap();
        let answer = closed_or_answered(&mut stream).await;
        assert!(answer.starts_with(status), "{padding}: {answer:?}");
    }
    running.stop().await.unwrap();
}

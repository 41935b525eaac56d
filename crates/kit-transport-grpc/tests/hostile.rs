//! The kit Listener against hostile clients, over real TCP on loopback: silent and half-open
//! connections, a flood of streams the server must reset ("MadeYouReset"), the connection cap
//! and the connection age. Each would hold the server's resources or its drain without the
//! listener's limits.

use std::net::SocketAddr;
use std::time::Duration;

use kit_transport_grpc::Health;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

mod support;

use support::{channel, pb, serve_with};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

async fn say(addr: SocketAddr, text: &str) -> Result<String, tonic::Status> {
    let mut client = pb::echo_client::EchoClient::new(channel(addr).await);
    client
        .say(pb::SayRequest {
            text: text.into(),
            times: 1,
        })
        .await
        .map(|r| r.into_inner().text)
}

/// Reads until the server closes the connection (end of stream or reset).
async fn closed_by_server(stream: &mut TcpStream) {
    let mut buf = [0; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => continue,
        }
    }
}

#[tokio::test]
async fn connections_that_never_finish_their_preface_do_not_hold_the_drain() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = serve_with(|l| l, Health::new(), async {
        let _ = stopped.await;
    })
    .await;
    // One connection that sends nothing, one that stops halfway through the preface, and one
    // idle HTTP/2 connection that has finished its handshake.
    let _silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&PREFACE[..10]).await.unwrap();
    let (idle, connection) = h2::client::handshake(TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap();
    tokio::spawn(connection);
    assert_eq!(say(addr, "served").await.unwrap(), "served#none");
    tokio::time::sleep(Duration::from_millis(100)).await;

    // The drain timeout is 30 s: the drain ends at once, cleanly.
    stop.send(()).unwrap();
    let served = tokio::time::timeout(Duration::from_secs(1), server)
        .await
        .expect("silent connections do not delay the shutdown")
        .unwrap();
    served.expect("a clean drain");
    drop(idle);
}

#[tokio::test]
async fn a_connection_without_its_preface_is_closed_after_the_handshake_timeout() {
    let (addr, _server) = serve_with(
        |l| l.handshake_timeout(Duration::from_millis(300)),
        Health::new(),
        std::future::pending(),
    )
    .await;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&PREFACE[..10]).await.unwrap();
    for stream in [&mut silent, &mut half] {
        tokio::time::timeout(Duration::from_secs(5), closed_by_server(stream))
            .await
            .expect("closed by the server");
    }
    // A client that sends its preface in time is served.
    assert_eq!(say(addr, "fine").await.unwrap(), "fine#none");
}

/// An HTTP/2 frame: length, type, flags, stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A gRPC call's request headers in HPACK, every field a literal without indexing (no dynamic
/// table state) or a static-table entry.
fn call_headers() -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    let literal = |block: &mut Vec<u8>, name_index: &[u8], value: &[u8]| {
        block.extend_from_slice(name_index);
        block.push(value.len() as u8);
        block.extend_from_slice(value);
    };
    literal(&mut block, &[0x04], b"/kittest.Echo/Say"); // :path
    literal(&mut block, &[0x01], b"kit"); // :authority
    literal(&mut block, &[0x0f, 0x10], b"application/grpc"); // content-type (index 31)
    literal(&mut block, &[0x00, 0x02, b't', b'e'], b"trailers");
    block
}

/// The same, with a connection-specific header, which HTTP/2 forbids: a malformed request,
/// a stream error the server answers with RST_STREAM.
fn malformed_call_headers() -> Vec<u8> {
    let mut block = call_headers();
    block.extend_from_slice(&[0x00, 10]);
    block.extend_from_slice(b"connection");
    block.push(5);
    block.extend_from_slice(b"close");
    block
}

#[tokio::test]
async fn a_client_that_makes_the_server_reset_streams_gets_goaway() {
    let (addr, _server) = serve_with(|l| l, Health::new(), std::future::pending()).await;
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    // Read the server's frames as they come, until GOAWAY or the end of the connection.
    let reader = tokio::spawn(async move {
        let (mut resets, mut goaway) = (0u32, None);
        let mut head = [0u8; 9];
        while read.read_exact(&mut head).await.is_ok() {
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0; len];
            if read.read_exact(&mut payload).await.is_err() {
                break;
            }
            match head[3] {
                0x3 => resets += 1,
                0x7 => {
                    goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()));
                    break;
                }
                _ => {}
            }
        }
        (resets, goaway)
    });
    // The preface and empty SETTINGS, then 2,000 malformed requests, each a stream the server
    // resets for the client's error: the "MadeYouReset" attack (CVE-2025-8671).
    let mut out = PREFACE.to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[]));
    let headers = malformed_call_headers();
    for i in 0..2000u32 {
        out.extend(h2_frame(0x1, 0x4 | 0x1, 2 * i + 1, &headers));
    }
    // The server may close before it has read everything.
    let _ = write.write_all(&out).await;
    let (resets, goaway) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the server answers")
        .unwrap();
    // ENHANCE_YOUR_CALM, once past the 1,024 allowed resets. (Without the limit, tonic's
    // default, no GOAWAY comes at all: the connection goes on resetting for ever.)
    assert_eq!(goaway, Some(0xb), "after {resets} RST_STREAM frames");
    // The server goes on serving everyone else.
    assert_eq!(say(addr, "still").await.unwrap(), "still#none");
}

#[tokio::test]
async fn at_the_connection_cap_accepting_waits_until_one_closes() {
    let (addr, _server) = serve_with(
        |l| l.max_connections(1),
        Health::new(),
        std::future::pending(),
    )
    .await;
    // A connection that sends nothing holds the only place (for the 10 s handshake timeout).
    let holder = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiting = tokio::spawn(async move { say(addr, "waited").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "not accepted while at the cap");
    drop(holder);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("accepted once a place is free")
        .unwrap();
    assert_eq!(answer.unwrap(), "waited#none");
}

#[tokio::test]
async fn a_connection_older_than_its_max_age_is_closed_with_goaway() {
    let (addr, _server) = serve_with(
        |l| l.max_connection_age(Duration::from_millis(300)),
        Health::new(),
        std::future::pending(),
    )
    .await;
    let (mut send, connection) = h2::client::handshake(TcpStream::connect(addr).await.unwrap())
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    // Served while young.
    let request = http::Request::post("/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    send = send.ready().await.unwrap();
    let (response, mut body) = send.send_request(request, false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
    // Then closed, though the client keeps it open.
    tokio::time::timeout(Duration::from_secs(5), connection)
        .await
        .expect("closed once older than the max age")
        .unwrap()
        .expect("a graceful close (GOAWAY)");
    drop(send);
}

/// A client's stream that never reads: the server's replies pile up in the sockets.
struct NeverReads(TcpStream);

impl tokio::io::AsyncRead for NeverReads {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
}

impl tokio::io::AsyncWrite for NeverReads {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_write_timeout() {
    use prost::Message;

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = serve_with(
        |l| l.write_timeout(Duration::from_millis(500)),
        Health::new(),
        async {
            let _ = stopped.await;
        },
    )
    .await;
    // A small receive buffer, and HTTP/2 windows as large as can be: nothing but the sockets
    // stops the server's writes.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let (mut send, connection) = h2::client::Builder::new()
        .initial_window_size(i32::MAX as u32)
        .initial_connection_window_size(i32::MAX as u32)
        .handshake::<_, bytes::Bytes>(NeverReads(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    // Eight calls of 8,000 bytes (within the 64 KiB the client may send before it reads the
    // server's window), each answered with 800 KB: more than the sockets hold.
    let message = pb::SayRequest {
        text: "x".repeat(8000),
        times: 100,
    }
    .encode_to_vec();
    let mut frame = vec![0];
    frame.extend((message.len() as u32).to_be_bytes());
    frame.extend(message);
    let frame = bytes::Bytes::from(frame);
    let mut calls = Vec::new();
    for _ in 0..8 {
        send = send.ready().await.unwrap();
        let request = http::Request::post(format!("http://{addr}/kittest.Echo/Say"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .unwrap();
        let (response, mut body) = send.send_request(request, false).unwrap();
        body.send_data(frame.clone(), true).unwrap();
        calls.push((response, body));
    }
    // Well-formed clients are served meanwhile.
    assert_eq!(say(addr, "fine").await.unwrap(), "fine#none");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The drain timeout is 30 s: the stalled connection is already closed, so the drain ends at
    // once.
    stop.send(()).unwrap();
    let served = tokio::time::timeout(Duration::from_secs(2), server)
        .await
        .expect("a client that stops reading does not hold the drain")
        .unwrap();
    served.expect("a clean drain");
    drop(calls);
}

#[tokio::test]
async fn an_http2_client_that_never_answers_pings_is_closed_after_the_keep_alive_timeout() {
    // The preface and an empty SETTINGS frame, then nothing but reading: no PING is answered.
    let unanswered_pings_close = |addr: SocketAddr, within: Duration| async move {
        let mut h2 = TcpStream::connect(addr).await.unwrap();
        h2.write_all(PREFACE).await.unwrap();
        h2.write_all(&h2_frame(4, 0, 0, &[])).await.unwrap();
        tokio::time::timeout(within, closed_by_server(&mut h2))
            .await
            .is_ok()
    };
    let ping = Duration::from_millis(200);
    let (addr, _server) = serve_with(
        |l| l.http2_keep_alive(ping, ping),
        Health::new(),
        std::future::pending(),
    )
    .await;
    assert!(unanswered_pings_close(addr, Duration::from_secs(5)).await);
    // With the defaults (no pings), the same connection is still open 2 s later.
    let (addr, _server) = serve_with(|l| l, Health::new(), std::future::pending()).await;
    assert!(!unanswered_pings_close(addr, Duration::from_secs(2)).await);
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
        let (addr, _server) = serve_with(
            |l| match idle {
                Some(idle) => l.tcp_keep_alive(idle),
                None => l,
            },
            Health::new(),
            std::future::pending(),
        )
        .await;
        // One call answered: the listener is serving, its socket set, before the connection
        // looked at is made (a connection inherits the listening socket's options on arrival).
        assert!(say(addr, "up").await.is_ok());
        let idle_client = TcpStream::connect(addr).await.unwrap();
        let timer = support::keep_alive_timer(addr, idle_client.local_addr().unwrap());
        match (timer, expected) {
            (None, None) => {}
            // The first probe is due `idle` after the last packet, a moment ago.
            (Some(left), Some(idle)) => assert!(
                left <= idle && left > idle - Duration::from_secs(5),
                "{left:?} left of {idle:?}"
            ),
            other => panic!("{idle:?}: timer and expected idle time {other:?}"),
        }
    }
}

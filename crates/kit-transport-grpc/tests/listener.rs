//! The kit Listener over real HTTP/2 on loopback: bad input sent raw (frames tonic's client
//! would never send), the message size limit, the health service, and the graceful drain.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request};
use kit_transport_grpc::Health;
use prost::Message;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

mod support;

use support::{channel, pb, serve_with};

/// One gRPC call written by hand on an HTTP/2 connection: the body bytes as given, then the
/// end of the stream. Answers the grpc-status code and message, from the headers of a
/// trailers-only response or from the trailers.
async fn raw_call(
    send: &mut h2::client::SendRequest<Bytes>,
    path: &str,
    body: Vec<u8>,
) -> (i32, String, Vec<u8>) {
    let request = Request::post(path)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let mut ready = send.clone().ready().await.unwrap();
    let (response, mut stream) = ready.send_request(request, false).unwrap();
    stream.send_data(Bytes::from(body), true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200, "gRPC errors travel in grpc-status");
    let (parts, mut body) = response.into_parts();
    let mut data = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        data.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    let status_of = |map: &HeaderMap| {
        map.get("grpc-status")
            .map(|v| v.to_str().unwrap().parse::<i32>().unwrap())
            .map(|code| {
                let message = map
                    .get("grpc-message")
                    .map(|m| m.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                (code, message)
            })
    };
    let (code, message) = status_of(&parts.headers)
        .or_else(|| status_of(&trailers))
        .expect("a grpc-status in the headers or the trailers");
    (code, message, data)
}

/// A length-prefixed gRPC message: flag, four-byte big-endian length, bytes.
fn frame(flag: u8, claimed_len: u32, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![flag];
    out.extend_from_slice(&claimed_len.to_be_bytes());
    out.extend_from_slice(bytes);
    out
}

fn say_frame(text: &str) -> Vec<u8> {
    let message = pb::SayRequest {
        text: text.to_owned(),
        times: 1,
    }
    .encode_to_vec();
    frame(0, message.len() as u32, &message)
}

async fn h2_connect(addr: SocketAddr) -> h2::client::SendRequest<Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (send, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    send
}

const SAY: &str = "/kittest.Echo/Say";

#[tokio::test]
async fn bad_input_sent_raw_gets_an_error_status_and_the_server_keeps_serving() {
    let (addr, _server) = serve_with(
        |l| l.max_message_bytes(1024),
        Health::new(),
        std::future::pending(),
    )
    .await;
    let mut send = h2_connect(addr).await;

    let good = raw_call(&mut send, SAY, say_frame("ok")).await;
    assert_eq!(good.0, 0, "a well-formed call: {good:?}");
    let reply = pb::SayReply::decode(&good.2[5..]).unwrap();
    assert_eq!(reply.text, "ok#none");

    let garbage = [0xff, 0xff, 0xff, 0xff, 0xff];
    let truncated = &say_frame("hello")[..9];
    let cases: Vec<(&str, Vec<u8>, Code)> = vec![
        // Not protobuf: a field header with an invalid wire type. The client's fault (tonic
        // says INTERNAL).
        (
            "malformed protobuf",
            frame(0, 5, &garbage),
            Code::InvalidArgument,
        ),
        // The length prefix promises more than the stream carries.
        ("truncated message", truncated.to_vec(), Code::Internal),
        ("truncated prefix", vec![0, 0, 0], Code::Internal),
        // The compressed flag without a grpc-encoding header.
        ("compressed flag", frame(1, 2, &[8, 1]), Code::Internal),
        // Over the listener's 1024-byte limit, refused from the prefix alone.
        (
            "oversized message",
            frame(0, 2048, &[0; 2048]),
            Code::ResourceExhausted,
        ),
        (
            "a prefix claiming 4 GiB",
            frame(0, u32::MAX, &[0; 16]),
            Code::ResourceExhausted,
        ),
        // The limit holds for any message of the stream, not just the first.
        (
            "oversized second message",
            [say_frame("a"), frame(0, 4000, &[0; 10])].concat(),
            Code::ResourceExhausted,
        ),
    ];
    for (what, body, expected) in cases {
        let (code, message, _) = raw_call(&mut send, SAY, body).await;
        assert_eq!(Code::from_i32(code), expected, "{what}: {message}");
        assert!(!message.is_empty(), "{what}: a message says why");
        // Still serving, on the same connection.
        let (code, _, _) = raw_call(&mut send, SAY, say_frame("again")).await;
        assert_eq!(code, 0, "after {what}");
    }
    let (code, message, _) = raw_call(&mut send, SAY, frame(0, 2048, &[0; 2048])).await;
    assert_eq!(
        // grpc-message is percent-encoded on the wire.
        message,
        "request%20message%20of%202048%20bytes%20is%20over%20the%20limit%20of%201024%20bytes",
        "{code}"
    );

    // tonic's own client is refused the same way, and a fresh connection is served.
    let mut client = pb::echo_client::EchoClient::new(channel(addr).await);
    let status = client
        .say(pb::SayRequest {
            text: "x".repeat(2000),
            times: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let reply = client
        .say(pb::SayRequest {
            text: "fine".into(),
            times: 1,
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().text, "fine#none");
}

#[tokio::test]
async fn the_health_service_answers_check_and_watch() {
    let health = Health::new();
    health.set_serving("kittest.Echo", true).await;
    let (addr, _server) = serve_with(|l| l, health.clone(), std::future::pending()).await;
    let mut client = HealthClient::new(channel(addr).await);
    let check = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };

    for service in ["", "kittest.Echo"] {
        let status = client.check(check(service)).await.unwrap().into_inner();
        assert_eq!(status.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = client.check(check("no.Such")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let mut watch = client
        .watch(check("kittest.Echo"))
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    health.set_serving("kittest.Echo", false).await;
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    let status = client
        .check(check("kittest.Echo"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), ServingStatus::NotServing);
}

#[tokio::test]
async fn shutdown_drains_in_flight_calls_and_reports_not_serving() {
    let health = Health::new();
    health.set_serving("kittest.Echo", true).await;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = serve_with(|l| l, health.clone(), async {
        let _ = stopped.await;
    })
    .await;
    let ch = channel(addr).await;
    let mut watch = HealthClient::new(ch.clone())
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    let calls: Vec<_> = (0..20)
        .map(|_| {
            let mut client = pb::echo_client::EchoClient::new(ch.clone());
            tokio::spawn(async move {
                client
                    .say(pb::SayRequest {
                        text: "sleep:400".into(),
                        times: 1,
                    })
                    .await
            })
        })
        .collect();
    // Time for the calls to reach the server (what makes them in flight).
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(()).unwrap();

    // Watchers learn of the drain while the calls are still running, then their stream ends
    // (else it would hold the connection open until the drain timeout).
    let drained = watch.message().await.unwrap().unwrap();
    assert_eq!(drained.status(), ServingStatus::NotServing);
    assert!(watch.message().await.unwrap().is_none());
    for call in calls {
        let reply = call.await.unwrap().expect("an in-flight call finishes");
        assert_eq!(reply.into_inner().text, "sleep:400#none");
    }
    let served = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the drain ends once the calls are done")
        .unwrap();
    served.expect("a clean drain");
    // Shutdown is for good: a late SERVING is ignored, as another listener serving the same
    // health shows.
    health.set_serving("kittest.Echo", true).await;
    let (again, _server) = serve_with(|l| l, health, std::future::pending()).await;
    let status = HealthClient::new(channel(again).await)
        .check(HealthCheckRequest {
            service: "kittest.Echo".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), ServingStatus::NotServing);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn a_drain_that_outlasts_its_timeout_is_an_error() {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (addr, server) = serve_with(
        |l| l.drain_timeout(Duration::from_millis(200)),
        Health::new(),
        async {
            let _ = stopped.await;
        },
    )
    .await;
    let mut client = pb::echo_client::EchoClient::new(channel(addr).await);
    let call = tokio::spawn(async move {
        client
            .say(pb::SayRequest {
                text: "sleep:5000".into(),
                times: 1,
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop.send(()).unwrap();
    let err = tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .expect("the drain timeout ends the serve")
        .unwrap()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
    call.abort();
}

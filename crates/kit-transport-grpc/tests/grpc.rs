//! Served and called over real HTTP/2 connections on loopback with tonic: a kit server behind
//! the generated Echo service, called by the kit client and by tonic's generated client.

use std::net::SocketAddr;
use std::time::Duration;

use kit_core::{Context, Endpoint, Error, ErrorKind, endpoint_fn};
use kit_transport_grpc::{Client, Server};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

#[allow(clippy::all, unreachable_pub, missing_docs)]
mod pb {
    include!("generated/kittest.rs");
}

/// The endpoint's view of a call: the text, the tenant from metadata, whether a deadline came.
#[derive(Clone)]
struct Tenant(String);

type SayServer = Server<
    kit_core::BoxEndpoint<(String, i32), String>,
    pb::SayRequest,
    pb::SayReply,
    (String, i32),
    String,
>;

struct Echo {
    say: SayServer,
}

#[tonic::async_trait]
impl pb::echo_server::Echo for Echo {
    async fn say(
        &self,
        request: Request<pb::SayRequest>,
    ) -> Result<Response<pb::SayReply>, Status> {
        self.say.serve(request).await
    }
}

fn kind_for(code: &str) -> Error {
    match code {
        "invalid" => Error::invalid_argument("bad text"),
        "notfound" => Error::not_found("no such text"),
        "business" => Error::business("texts must be polite"),
        "overloaded" => Error::overloaded("too many texts"),
        "unavailable" => Error::unavailable("backend down"),
        "internal" => Error::internal("broken"),
        _ => Error::new(ErrorKind::Unknown, "unknown error"),
    }
}

fn echo_server() -> Echo {
    let say = endpoint_fn(|cx: Context, (text, times): (String, i32)| async move {
        if let Some(code) = text.strip_prefix("fail:") {
            return Err(kind_for(code));
        }
        if let Some(ms) = text.strip_prefix("sleep:") {
            let ms: u64 = ms.parse().unwrap_or(0);
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                err = cx.done() => return Err(err),
            }
        }
        let deadline = cx
            .remaining()
            .map_or("none".to_owned(), |_| "set".to_owned());
        let tenant = cx.get::<Tenant>().map_or(String::new(), |t| t.0.clone());
        Ok(format!(
            "{}|{tenant}|{deadline}",
            text.repeat(times.max(0) as usize)
        ))
    });
    let say = Server::new(
        kit_core::BoxEndpoint::new(say),
        |_cx, r: pb::SayRequest| {
            if r.times > 100 {
                return Err(Error::invalid_argument("times must be at most 100"));
            }
            Ok((r.text, r.times))
        },
        |_cx, out: String| {
            let mut parts = out.splitn(3, '|');
            let text = parts.next().unwrap_or_default().to_owned();
            let tenant = parts.next().unwrap_or_default().to_owned();
            let deadline = parts.next().unwrap_or_default();
            Ok(pb::SayReply {
                text: format!("{text}#{deadline}"),
                tenant,
            })
        },
    )
    .before(
        |cx, md| match md.get("x-tenant").and_then(|v| v.to_str().ok()) {
            Some(t) => cx.with_value(Tenant(t.to_owned())),
            None => cx,
        },
    )
    .after(|_cx, md| {
        md.insert("x-served-by", MetadataValue::from_static("kit"));
    });
    Echo { say }
}

async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::echo_server::EchoServer::new(echo_server()))
            .serve_with_incoming(incoming),
    );
    addr
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn say_client(
    channel: Channel,
) -> Client<pb::SayRequest, pb::SayReply, (String, i32), pb::SayReply> {
    Client::new(
        channel,
        "/kittest.Echo/Say",
        |_cx, (text, times): (String, i32)| Ok(pb::SayRequest { text, times }),
        |_cx, reply: pb::SayReply| Ok(reply),
    )
    .unwrap()
}

#[tokio::test]
async fn a_kit_client_calls_a_kit_server_with_metadata_both_ways() {
    let addr = serve().await;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let client = {
        let seen = std::sync::Arc::clone(&seen);
        say_client(channel(addr).await)
            .before(|_cx, md| {
                md.insert("x-tenant", MetadataValue::from_static("acme"));
            })
            .after(move |_cx, md| {
                seen.lock().unwrap().push(
                    md.get("x-served-by")
                        .map(|v| v.to_str().unwrap().to_owned()),
                );
            })
    };
    let reply = client.call(Context::new(), ("ab".into(), 3)).await.unwrap();
    assert_eq!(reply.text, "ababab#none");
    assert_eq!(reply.tenant, "acme");
    assert_eq!(*seen.lock().unwrap(), [Some("kit".to_owned())]);

    // The caller's deadline reaches the server's endpoint as its context deadline.
    let cx = Context::new().with_timeout(Duration::from_secs(30));
    assert_eq!(
        client.call(cx, ("x".into(), 1)).await.unwrap().text,
        "x#set"
    );
}

#[tokio::test]
async fn errors_travel_as_real_status_codes_and_come_back_as_the_same_kinds() {
    let addr = serve().await;
    let client = say_client(channel(addr).await);
    let mut raw = pb::echo_client::EchoClient::new(channel(addr).await);
    for (code, status, kind) in [
        ("invalid", Code::InvalidArgument, ErrorKind::InvalidArgument),
        ("notfound", Code::NotFound, ErrorKind::NotFound),
        ("business", Code::FailedPrecondition, ErrorKind::Business),
        ("overloaded", Code::ResourceExhausted, ErrorKind::Overloaded),
        ("unavailable", Code::Unavailable, ErrorKind::Unavailable),
        ("internal", Code::Internal, ErrorKind::Internal),
        ("other", Code::Unknown, ErrorKind::Unknown),
    ] {
        let text = format!("fail:{code}");
        // What any gRPC client sees: the status code and message.
        let got = raw
            .say(pb::SayRequest {
                text: text.clone(),
                times: 1,
            })
            .await
            .unwrap_err();
        assert_eq!(got.code(), status, "{code}");
        // What a kit client sees: the same kind, the code kept.
        let err = client.call(Context::new(), (text, 1)).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.grpc_code()),
            (kind, status as i32),
            "{code}"
        );
    }
    // A decoder's refusal is invalid argument too; the server keeps serving.
    let err = raw
        .say(pb::SayRequest {
            text: "a".into(),
            times: 1000,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "times must be at most 100")
    );
    assert_eq!(
        client
            .call(Context::new(), ("ok".into(), 1))
            .await
            .unwrap()
            .text,
        "ok#none"
    );
}

#[tokio::test]
async fn the_deadline_bounds_the_call_on_both_sides() {
    let addr = serve().await;
    let client = say_client(channel(addr).await);
    let cx = Context::new().with_timeout(Duration::from_millis(200));
    let err = client
        .call(cx, ("sleep:60000".into(), 1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    // A client that only sends `grpc-timeout` (and does not time out itself): the server gives
    // up at the deadline. Both the endpoint's context (DEADLINE_EXCEEDED) and tonic's own
    // server-side timeout (CANCELLED "Timeout expired") fire then; whichever is first answers.
    let mut raw = pb::echo_client::EchoClient::new(channel(addr).await);
    let mut request = Request::new(pb::SayRequest {
        text: "sleep:60000".into(),
        times: 1,
    });
    request
        .metadata_mut()
        .insert("grpc-timeout", MetadataValue::from_static("200m"));
    let status = raw.say(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
}

#[tokio::test]
async fn a_client_needs_a_method_path_and_a_server_that_is_there() {
    let addr = serve().await;
    let channel = channel(addr).await;
    for bad in [
        "kittest.Echo/Say",
        "/kittest.Echo",
        "/a/b/c",
        "/with space/x",
    ] {
        let made = Client::<pb::SayRequest, pb::SayReply, pb::SayRequest, pb::SayReply>::new(
            channel.clone(),
            bad,
            |_, r| Ok(r),
            |_, r| Ok(r),
        );
        assert!(made.is_err(), "{bad}");
    }
    let missing = Client::<pb::SayRequest, pb::SayReply, pb::SayRequest, pb::SayReply>::new(
        channel,
        "/kittest.Echo/Shout",
        |_, r| Ok(r),
        |_, r| Ok(r),
    )
    .unwrap();
    let err = missing
        .call(Context::new(), pb::SayRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unimplemented, "{err}");
    // A server that is not there: unavailable.
    let gone = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let lazy = Channel::from_shared(format!("http://{gone}"))
        .unwrap()
        .connect_lazy();
    let err = say_client(lazy)
        .call(Context::new(), ("x".into(), 1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
}

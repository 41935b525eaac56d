//! Served and called over real HTTP/2 connections on loopback with tonic: a kit server behind
//! the generated Echo service, called by the kit client and by tonic's generated client.

use std::time::Duration;

use kit_core::{Context, Endpoint, ErrorKind};
use kit_transport_grpc::Client;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request};

mod support;

use support::{channel, pb, say_client, serve};

/// The method the server's after hook reads from its `RequestInfo`, as the wire layer records it.
const METHOD: &str = "kittest.Echo/Say";

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
                // Headers and trailers, merged by tonic: the server's after hook set both.
                for key in ["x-served-by", "x-reply-bytes", "x-method"] {
                    seen.lock()
                        .unwrap()
                        .push(md.get(key).map(|v| v.to_str().unwrap().to_owned()));
                }
            })
    };
    let reply = client.call(Context::new(), ("ab".into(), 3)).await.unwrap();
    assert_eq!(reply.text, "ababab#none");
    assert_eq!(reply.tenant, "acme");
    assert_eq!(
        *seen.lock().unwrap(),
        [
            Some("kit".to_owned()),
            Some("4".to_owned()),
            Some(METHOD.to_owned())
        ]
    );

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
        // What a kit client sees: the same kind, and so the same code; a failure's message
        // replaced by a fixed one, its text kept as the detail (for logs, not for callers).
        let err = client.call(Context::new(), (text, 1)).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.grpc_code()),
            (kind, status as i32),
            "{code}"
        );
        match kind.is_failure() {
            true => {
                assert_eq!(
                    err.message(),
                    format!("the upstream service failed: {status:?}")
                );
                assert_eq!(err.detail(), Some(format!("{status:?}: {}", got.message())));
            }
            false => assert_eq!((err.message(), err.detail()), (got.message(), None)),
        }
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

#[tokio::test]
async fn the_endpoint_sees_the_peer_address_and_the_request_metadata() {
    use kit_transport_grpc::{RequestInfo, Server};
    // An Echo whose endpoint answers what it knows of the call.
    let say = Server::new(
        kit_core::BoxEndpoint::new(kit_core::endpoint_fn(
            |cx: Context, _: (String, i32)| async move {
                let info = cx.get::<RequestInfo>().expect("the call's RequestInfo");
                let peer = info.remote_addr().map(|a| a.ip().to_string());
                let tenant = info
                    .metadata()
                    .get("x-tenant")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok::<_, kit_core::Error>(format!("{peer:?} {tenant:?}"))
            },
        )),
        |_cx, r: pb::SayRequest| Ok((r.text, r.times)),
        |_cx, text: String| {
            Ok(pb::SayReply {
                text,
                tenant: String::new(),
            })
        },
    );
    let addr = support::serve_say(say.clone()).await;

    let mut client = pb::echo_client::EchoClient::new(channel(addr).await);
    let mut request = Request::new(pb::SayRequest {
        text: "hi".into(),
        times: 1,
    });
    request
        .metadata_mut()
        .insert("x-tenant", MetadataValue::from_static("acme"));
    let reply = client.say(request).await.unwrap().into_inner();
    assert_eq!(reply.text, r#"Some("127.0.0.1") Some("acme")"#);

    // Handed a call in-process, the server knows no peer.
    let reply = say
        .serve(Request::new(pb::SayRequest {
            text: "hi".into(),
            times: 1,
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.text, "None None");
}

#[tokio::test]
async fn a_server_called_in_process_from_a_served_call_is_not_told_its_method() {
    use kit_transport_grpc::{RequestInfo, Server};
    fn method(cx: &Context) -> Option<String> {
        cx.get::<RequestInfo>()?.method().map(str::to_owned)
    }
    let reply = |text: String| {
        Ok(pb::SayReply {
            text,
            tenant: String::new(),
        })
    };
    // The inner server answers the method it was told; the outer one serves the inner one
    // in-process from its endpoint and answers both.
    let inner = Server::new(
        kit_core::endpoint_fn(|cx: Context, _: ()| async move {
            Ok::<_, kit_core::Error>(format!("{:?}", method(&cx)))
        }),
        |_cx, _: pb::SayRequest| Ok(()),
        move |_cx, text: String| reply(text),
    );
    let outer = Server::new(
        kit_core::BoxEndpoint::new(kit_core::endpoint_fn(
            move |cx: Context, _: (String, i32)| {
                let inner = inner.clone();
                async move {
                    let said = inner
                        .serve(Request::new(pb::SayRequest::default()))
                        .await
                        .map_err(|status| kit_core::Error::internal(status.message().to_owned()))?
                        .into_inner()
                        .text;
                    Ok::<_, kit_core::Error>(format!("{:?} {said}", method(&cx)))
                }
            },
        )),
        |_cx, r: pb::SayRequest| Ok((r.text, r.times)),
        move |_cx, text: String| reply(text),
    );
    let addr = support::serve_say(outer).await;

    let mut client = pb::echo_client::EchoClient::new(channel(addr).await);
    let said = client
        .say(pb::SayRequest::default())
        .await
        .unwrap()
        .into_inner()
        .text;
    assert_eq!(said, format!("Some({METHOD:?}) None"));
}

#[tokio::test]
async fn one_options_value_serves_every_method_with_its_error_encoder_and_finalizers() {
    use kit_transport_grpc::{Server, ServerOptions};
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let options = {
        let seen = Arc::clone(&seen);
        ServerOptions::new()
            .error_encoder(|_cx, err| tonic::Status::aborted(format!("ours: {}", err.message())))
            .finalizer(move |_cx, outcome| {
                let code = outcome.as_ref().map_or_else(|s| s.code(), |()| Code::Ok);
                seen.lock().unwrap().push(code);
            })
    };
    let method = |fails: bool| {
        Server::new(
            kit_core::endpoint_fn(move |_cx: Context, text: String| async move {
                match fails {
                    true => Err(kit_core::Error::unavailable("backend gone")),
                    false => Ok(text),
                }
            }),
            |_cx, r: pb::SayRequest| Ok(r.text),
            |_cx, text: String| {
                Ok(pb::SayReply {
                    text,
                    tenant: String::new(),
                })
            },
        )
        .options(options.clone())
    };
    let (works, fails) = (method(false), method(true));
    let say = |text: &str| {
        Request::new(pb::SayRequest {
            text: text.into(),
            times: 1,
        })
    };
    assert_eq!(works.serve(say("a")).await.unwrap().into_inner().text, "a");
    let status = fails.serve(say("b")).await.unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::Aborted, "ours: backend gone")
    );
    assert_eq!(*seen.lock().unwrap(), [Code::Ok, Code::Aborted]);
}

//! The client endpoint: deadlines and cancellation bound the call, errors get their kind from
//! the status (a 4xx keeps the server's message, a 5xx's text becomes the detail), hooks run,
//! and a streaming decoder reads the body as it comes.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use kit_core::{Context, Endpoint, Error, ErrorKind, endpoint_fn};
use kit_transport_http::{Client, Router, Server, json};
use support::Running;

fn router() -> Router {
    let sleep = endpoint_fn(|_cx, ms: u64| async move {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok::<_, Error>(ms)
    });
    let fail = endpoint_fn(|_cx, kind: String| async move {
        Err::<(), _>(match kind.as_str() {
            "not_found" => Error::not_found("no such thing"),
            "unavailable" => Error::unavailable("backend down"),
            _ => Error::internal("boom"),
        })
    });
    let text = endpoint_fn(|_cx, (): ()| async move { Ok::<_, Error>(()) });
    Router::new()
        .post(
            "/sleep",
            Server::new(sleep, json::decode_request, json::encode_response),
        )
        .post(
            "/fail",
            Server::new(fail, json::decode_request, json::encode_response),
        )
        .post(
            "/text-error",
            Server::new(text, json::decode_request, |_cx, ()| {
                let mut r = Response::new(Bytes::from_static(b"upstream says no\n"));
                *r.status_mut() = StatusCode::BAD_GATEWAY;
                Ok(r)
            }),
        )
        .post(
            "/lines",
            Server::new(
                endpoint_fn(|_cx, n: usize| async move { Ok::<_, Error>(n) }),
                json::decode_request,
                |_cx, n: usize| Ok(Response::new(Bytes::from("line\n".repeat(n)))),
            ),
        )
}

fn client<
    Req: serde::Serialize + Send + 'static,
    Resp: serde::de::DeserializeOwned + Send + 'static,
>(
    running: &Running,
    path: &str,
) -> Client<Req, Resp> {
    Client::new(
        Method::POST,
        running.url(path),
        json::encode_request,
        json::decode_response,
    )
}

#[tokio::test]
async fn the_deadline_of_the_call_bounds_the_exchange() {
    let running = Running::serve(router()).await;
    let sleep = client::<u64, u64>(&running, "/sleep");
    assert_eq!(sleep.call(Context::new(), 1).await.unwrap(), 1);

    let cx = Context::new().with_timeout(Duration::from_millis(100));
    let err = sleep.call(cx, 60_000).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");

    let (cx, cancel) = Context::new().with_cancel();
    let call = tokio::spawn({
        let sleep = sleep.clone();
        async move { sleep.call(cx, 60_000).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    cancel.cancel();
    let err = call.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled, "{err}");

    // An expired context never sends.
    let expired = Context::new().with_timeout(Duration::ZERO);
    assert_eq!(
        sleep.call(expired, 1).await.unwrap_err().kind(),
        ErrorKind::Timeout
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn non_2xx_responses_are_errors_with_status_kind_and_message() {
    let running = Running::serve(router()).await;
    let fail = client::<&str, ()>(&running, "/fail");
    // A 4xx keeps the remote's message (its account of our request); a 5xx gets a fixed one,
    // the remote's text going to the detail: it must not reach our own callers.
    for (kind, message, detail, expected) in [
        ("not_found", "no such thing", None, ErrorKind::NotFound),
        (
            "unavailable",
            "the upstream service failed: 503 Service Unavailable",
            Some("503 Service Unavailable: backend down"),
            ErrorKind::Unavailable,
        ),
        (
            "other",
            "the upstream service failed: 500 Internal Server Error",
            Some("500 Internal Server Error: boom"),
            ErrorKind::Internal,
        ),
    ] {
        let err = fail.call(Context::new(), kind).await.unwrap_err();
        assert_eq!(
            (err.kind(), err.message(), err.detail().as_deref()),
            (expected, message, detail)
        );
        // Our own status is the kind's, not whatever the remote chose.
        assert_eq!(err.http_status(), expected.http_status());
    }
    let text = client::<(), ()>(&running, "/text-error");
    let err = text.call(Context::new(), ()).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.http_status(), err.message()),
        (
            ErrorKind::Unavailable,
            503,
            "the upstream service failed: 502 Bad Gateway"
        )
    );
    assert_eq!(
        err.detail().as_deref(),
        Some("502 Bad Gateway: upstream says no")
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_server_that_is_not_there_is_unavailable() {
    // Bind and drop: a loopback port nobody listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::new(
        Method::POST,
        format!("http://{addr}/x").parse().unwrap(),
        json::encode_request,
        json::decode_response::<u64>,
    );
    let err = client.call(Context::new(), 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(err.message(), "could not connect to the server");
}

#[tokio::test]
async fn a_server_that_dies_mid_answer_is_unavailable_so_a_retry_may_go_elsewhere() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // A server that reads the request, starts an answer, and goes away (as a killed process).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Le").await;
            drop(conn);
        }
    });
    let client = Client::new(
        Method::POST,
        format!("http://{addr}/x").parse().unwrap(),
        json::encode_request,
        json::decode_response::<u64>,
    );
    let err = client.call(Context::new(), 1).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn hooks_see_the_request_and_response_and_a_streaming_decoder_reads_the_body() {
    let running = Running::serve(router()).await;
    let statuses = Arc::new(Mutex::new(Vec::new()));
    let heads = Arc::new(Mutex::new(Vec::new()));
    let lines = {
        let (statuses, heads) = (Arc::clone(&statuses), Arc::clone(&heads));
        Client::streaming(
            Method::POST,
            running.url("/lines"),
            json::encode_request,
            |_cx, response: Response<hyper::body::Incoming>| async move {
                let mut body = response.into_body();
                let mut lines = 0;
                while let Some(frame) = body.frame().await {
                    let frame = frame.map_err(|e| Error::unavailable(e.to_string()))?;
                    if let Ok(data) = frame.into_data() {
                        lines += data.iter().filter(|&&b| b == b'\n').count();
                    }
                }
                Ok(lines)
            },
        )
        .before(|_cx, request| {
            request
                .headers_mut()
                .insert("x-request-id", HeaderValue::from_static("fixed-id"));
        })
        .after(move |_cx, head| {
            heads
                .lock()
                .unwrap()
                .push(head.headers.get("x-request-id").cloned());
        })
        .finalizer(move |_cx, result| {
            statuses
                .lock()
                .unwrap()
                .push(result.as_ref().map(|s| s.as_u16()).map_err(|e| e.kind()));
        })
    };
    assert_eq!(
        lines.call(Context::new(), 100_000usize).await.unwrap(),
        100_000
    );
    assert_eq!(heads.lock().unwrap()[0].as_ref().unwrap(), "fixed-id");
    let cx = Context::new().with_timeout(Duration::ZERO);
    assert!(lines.call(cx, 1usize).await.is_err());
    assert_eq!(
        *statuses.lock().unwrap(),
        [Ok(200), Err(ErrorKind::Timeout)]
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_server_passing_on_a_client_error_says_nothing_of_the_upstream() {
    // The upstream fails with its internals in the message, and with a status of its choosing.
    let upstream = Running::serve(Router::new().post(
        "/report",
        Server::new(
            endpoint_fn(|_cx, (): ()| async move {
                Err::<(), _>(
                    Error::unavailable("db at 10.0.0.7:5432 down: FATAL password failed")
                        .with_http_status(502),
                )
            }),
            json::decode_request,
            json::encode_response,
        ),
    ))
    .await;
    // Our service calls it with a kit client, and answers with whatever error it gets.
    let to_upstream = client::<(), ()>(&upstream, "/report");
    let gone = Client::<(), ()>::new(
        Method::POST,
        "http://127.0.0.1:1/report".parse().unwrap(),
        json::encode_request,
        json::decode_response,
    );
    let ours = Running::serve(
        Router::new()
            .post(
                "/report",
                Server::new(to_upstream, json::decode_request, json::encode_response),
            )
            .post(
                "/gone",
                Server::new(gone, json::decode_request, json::encode_response),
            ),
    )
    .await;
    for (path, status, message) in [
        (
            "/report",
            503,
            "the upstream service failed: 502 Bad Gateway",
        ),
        ("/gone", 503, "could not connect to the server"),
    ] {
        let answer = support::post(ours.addr, path, "application/json", "null").await;
        assert_eq!(
            (answer.status, answer.json()),
            (status, serde_json::json!({ "error": message })),
            "{path}"
        );
    }
    ours.stop().await.unwrap();
    upstream.stop().await.unwrap();
}

//! The per-endpoint server and the router over real connections: round trips over HTTP/1.1 and
//! HTTP/2, every bad input answered with its status and a JSON error while the server keeps
//! serving, hooks, request context, response status and headers.

mod support;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use kit_core::{Context, Endpoint, Error, ErrorKind, endpoint_fn};
use kit_transport_http::json::{self, ResponseMeta};
use kit_transport_http::{Client, ClientPool, RequestInfo, Router, Server, ServerOptions};
use serde::{Deserialize, Serialize};
use support::{Running, post, raw};

#[derive(Deserialize, Serialize)]
struct SumRequest {
    a: i64,
    b: i64,
}

#[derive(Deserialize, Serialize, Debug, PartialEq)]
struct SumResponse {
    v: i64,
}

fn sum_server() -> Server<impl Endpoint<SumRequest, Response = SumResponse>, SumRequest, SumResponse>
{
    let sum = endpoint_fn(|_cx, r: SumRequest| async move {
        if r.a == 0 && r.b == 0 {
            return Err(Error::business("can't sum two zeroes"));
        }
        r.a.checked_add(r.b)
            .map(|v| SumResponse { v })
            .ok_or_else(|| Error::business("integer overflow"))
    });
    Server::new(sum, json::decode_request, json::encode_response)
}

fn router() -> Router {
    Router::new().post("/sum", sum_server())
}

fn sum_client(running: &Running, pool: ClientPool) -> Client<SumRequest, SumResponse> {
    Client::new(
        Method::POST,
        running.url("/sum"),
        json::encode_request,
        json::decode_response,
    )
    .pool(pool)
}

#[tokio::test]
async fn round_trips_over_http1_and_http2() {
    let peer = endpoint_fn(|cx: Context, (): ()| async move {
        let info = cx.get::<RequestInfo>().expect("the server's request info");
        Ok::<_, Error>((
            info.remote_addr().map(|a| a.ip().to_string()),
            info.request_id().len(),
        ))
    });
    let router = router().post(
        "/peer",
        Server::new(peer, json::decode_request, json::encode_response),
    );
    let running = Running::serve(router).await;
    for (name, pool) in [("h1", ClientPool::http1()), ("h2", ClientPool::http2())] {
        let client = sum_client(&running, pool.clone());
        for (a, b) in [(1, 2), (-5, 3), (i64::MAX - 1, 1)] {
            let got = client.call(Context::new(), SumRequest { a, b }).await;
            assert_eq!(got.unwrap(), SumResponse { v: a + b }, "{name}");
        }
        // The peer is known over both protocols.
        let peer = Client::new(
            Method::POST,
            running.url("/peer"),
            json::encode_request,
            json::decode_response::<(Option<String>, usize)>,
        )
        .pool(pool);
        let got = peer.call(Context::new(), ()).await.unwrap();
        assert_eq!(got, (Some("127.0.0.1".to_owned()), 16), "{name}");
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_id_is_echoed_when_sent_or_asked_for_only() {
    let running = Running::serve(router()).await;
    let plain = post(running.addr, "/sum", "application/json", r#"{"a":1,"b":1}"#).await;
    assert_eq!(plain.header("x-request-id"), None);
    let request = "POST /sum HTTP/1.1\r\nHost: t\r\nX-Request-Id: req-7\r\n\
                   Content-Length: 13\r\nConnection: close\r\n\r\n{\"a\":1,\"b\":1}";
    let sent = raw(running.addr, request.as_bytes()).await;
    assert_eq!(sent.header("x-request-id"), Some("req-7"));
    // An id with a control character or over 128 characters is not taken up.
    for bad in ["a\tb".to_owned(), "x".repeat(129)] {
        let request = format!(
            "POST /sum HTTP/1.1\r\nHost: t\r\nX-Request-Id: {bad}\r\n\
             Content-Length: 13\r\nConnection: close\r\n\r\n{{\"a\":1,\"b\":1}}"
        );
        let answer = raw(running.addr, request.as_bytes()).await;
        assert_eq!(
            (answer.status, answer.header("x-request-id")),
            (200, None),
            "{bad:?}"
        );
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn business_errors_are_400_with_a_json_error_and_reach_the_client() {
    let running = Running::serve(router()).await;
    let response = post(running.addr, "/sum", "application/json", r#"{"a":0,"b":0}"#).await;
    assert_eq!(response.status, 400);
    assert_eq!(
        response.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        response.json(),
        serde_json::json!({"error": "can't sum two zeroes"})
    );

    let client = sum_client(&running, ClientPool::http1());
    let err = client
        .call(Context::new(), SumRequest { a: i64::MAX, b: 1 })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "integer overflow");
    assert_eq!(err.http_status(), 400);
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn every_bad_input_gets_its_status_and_a_json_error_and_the_server_keeps_serving() {
    let running = Running::serve(router()).await;
    let addr = running.addr;
    let big = format!(r#"{{"a":1,"b":2,"pad":"{}"}}"#, "x".repeat(2 << 20));
    let cases: Vec<(&str, u16, &str)> = vec![
        ("malformed JSON", 400, "{\"a\":1,"),
        ("not JSON at all", 400, "hello"),
        ("missing field", 400, r#"{"a":1}"#),
        ("wrong type", 400, r#"{"a":"one","b":2}"#),
        ("empty body", 400, ""),
        ("body over the limit", 413, &big),
    ];
    let expected_messages = [
        "malformed JSON: EOF while parsing a value at line 1 column 7",
        "malformed JSON: expected value at line 1 column 1",
        "invalid request: missing field `b` at line 1 column 7",
        "invalid request: invalid type: string \"one\", expected i64 at line 1 column 10",
        "malformed JSON: EOF while parsing a value at line 1 column 0",
        "request body is larger than the limit of 1048576 bytes",
    ];
    for ((name, status, body), message) in cases.into_iter().zip(expected_messages) {
        let response = post(addr, "/sum", "application/json", body).await;
        assert_eq!(response.status, status, "{name}: {response:?}");
        assert_eq!(response.json()["error"], message, "{name}");
        // Still serving.
        let ok = post(addr, "/sum", "application/json", r#"{"a":2,"b":3}"#).await;
        assert_eq!(ok.json(), serde_json::json!({"v": 5}), "after {name}");
    }

    let not_found = post(addr, "/nope", "application/json", "{}").await;
    assert_eq!(not_found.status, 404);
    assert_eq!(not_found.json()["error"], "no route for POST /nope");

    let wrong_method = raw(
        addr,
        b"GET /sum HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.header("allow"), Some("POST"));
    assert_eq!(
        wrong_method.json()["error"],
        "method GET is not allowed for /sum"
    );

    let huge_header = format!(
        "POST /sum HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        "y".repeat(100 * 1024)
    );
    let response = raw(addr, huge_header.as_bytes()).await;
    assert_eq!(response.status, 431, "{response:?}");
    assert_eq!(
        response.json()["error"],
        "request header fields too large",
        "hyper's own answer, with kit's body"
    );
    let many_headers = format!(
        "POST /sum HTTP/1.1\r\nHost: t\r\n{}Connection: close\r\n\r\n",
        "X-A: 1\r\n".repeat(500)
    );
    let response = raw(addr, many_headers.as_bytes()).await;
    assert_eq!(response.status, 431, "{response:?}");
    assert_eq!(response.json()["error"], "request header fields too large");

    let garbage = raw(addr, b"\x16\x03\x01 not http at all\r\n\r\n").await;
    assert_eq!(garbage.status, 400, "{garbage:?}");
    assert_eq!(garbage.json()["error"], "malformed request head");
    assert_eq!(
        garbage.header("content-type"),
        Some(kit_transport_http::JSON_CONTENT_TYPE)
    );
    // After a request served on the same connection too.
    let second = raw(
        addr,
        b"POST /sum HTTP/1.1\r\nHost: t\r\nContent-Length: 13\r\n\r\n{\"a\":1,\"b\":2}GET / HTTP/1.1\r\nBad Header\r\n\r\n",
    )
    .await;
    assert_eq!(second.status, 200, "{second:?}");
    assert!(
        second.body.starts_with("{\"v\":3}HTTP/1.1 400 ")
            && second
                .body
                .ends_with("\r\n\r\n{\"error\":\"malformed request head\"}"),
        "{second:?}"
    );

    let ok = post(addr, "/sum", "application/json", r#"{"a":40,"b":2}"#).await;
    assert_eq!(ok.json(), serde_json::json!({"v": 42}));
    running.stop().await.unwrap();
}

/// A response that picks its status and headers (go-kit's StatusCoder and Headerer).
#[derive(Serialize)]
struct Created {
    id: u32,
}

impl ResponseMeta for Created {
    fn status_code(&self) -> StatusCode {
        if self.id == 0 {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::CREATED
        }
    }
    fn headers(&self, headers: &mut HeaderMap) {
        headers.insert(
            "location",
            HeaderValue::from_str(&format!("/items/{}", self.id)).unwrap(),
        );
    }
}

#[tokio::test]
async fn responses_choose_status_and_headers_and_204_has_no_body() {
    let create = endpoint_fn(|_cx, id: u32| async move { Ok::<_, Error>(Created { id }) });
    let router = Router::new().post(
        "/items",
        Server::new(
            create,
            json::decode_request,
            json::encode_response_with_meta,
        ),
    );
    let running = Running::serve(router).await;
    let created = post(running.addr, "/items", "application/json", "7").await;
    assert_eq!(created.status, 201);
    assert_eq!(created.header("location"), Some("/items/7"));
    assert_eq!(created.json(), serde_json::json!({"id": 7}));

    let empty = post(running.addr, "/items", "application/json", "0").await;
    assert_eq!(empty.status, 204);
    assert_eq!(empty.body, "");
    assert_eq!(empty.header("content-length"), None);
    running.stop().await.unwrap();
}

/// What the endpoint read from its RequestInfo: method, path, query, host, request id, user
/// agent, peer.
type SeenRequest = (
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    std::net::SocketAddr,
);

/// What the hooks and the endpoint saw.
#[derive(Default)]
struct Seen {
    tenant: Option<String>,
    info: Option<SeenRequest>,
    errors: Vec<String>,
    finished: Vec<(u16, u64)>,
}

#[derive(Clone)]
struct Tenant(String);

#[tokio::test]
async fn hooks_run_and_the_context_describes_the_request() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let echo = {
        let seen = Arc::clone(&seen);
        endpoint_fn(move |cx: Context, n: i64| {
            let seen = Arc::clone(&seen);
            async move {
                let mut s = seen.lock().unwrap();
                s.tenant = cx.get::<Tenant>().map(|t| t.0.clone());
                // Asking for the id makes one if the client sent none; it is then echoed.
                let info = cx.get::<RequestInfo>().expect("the request in the context");
                s.info = Some((
                    info.method().to_string(),
                    info.path().to_owned(),
                    info.query().map(str::to_owned),
                    info.host().map(str::to_owned),
                    info.request_id().to_owned(),
                    info.headers()
                        .get("user-agent")
                        .map(|v| v.to_str().unwrap_or_default().to_owned())
                        .unwrap_or_default(),
                    info.remote_addr().expect("the peer"),
                ));
                if n < 0 {
                    return Err(Error::invalid_argument("negative"));
                }
                Ok(n)
            }
        })
    };
    let options = {
        let (e, f) = (Arc::clone(&seen), Arc::clone(&seen));
        ServerOptions::new()
            .before(|cx, parts| match parts.headers.get("x-tenant") {
                Some(t) => cx.with_value(Tenant(t.to_str().unwrap().to_owned())),
                None => cx,
            })
            .after(|cx, head| {
                let tenant = cx
                    .get::<Tenant>()
                    .map_or("none".to_owned(), |t| t.0.clone());
                head.headers
                    .insert("x-served-for", HeaderValue::from_str(&tenant).unwrap());
            })
            .error_handler(move |_, err| e.lock().unwrap().errors.push(err.to_string()))
            .finalizer(move |_, done| {
                f.lock()
                    .unwrap()
                    .finished
                    .push((done.status.as_u16(), done.bytes_written))
            })
    };
    let router = Router::new().post(
        "/echo",
        Server::new(echo, json::decode_request, json::encode_response).options(options),
    );
    let running = Running::serve(router).await;

    let request = "POST /echo?x=1 HTTP/1.1\r\nHost: svc.local:8081\r\nX-Tenant: acme\r\n\
                   User-Agent: test/1\r\nX-Request-Id: abc-123\r\nContent-Length: 2\r\n\
                   Connection: close\r\n\r\n41";
    let response = raw(running.addr, request.as_bytes()).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "41");
    assert_eq!(response.header("x-served-for"), Some("acme"));
    assert_eq!(response.header("x-request-id"), Some("abc-123"));
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.tenant.as_deref(), Some("acme"));
        let (method, path, query, host, id, agent, remote) = s.info.clone().unwrap();
        assert_eq!(method, "POST");
        assert_eq!(path, "/echo");
        assert_eq!(query.as_deref(), Some("x=1"));
        assert_eq!(host.as_deref(), Some("svc.local:8081"));
        assert_eq!(id, "abc-123");
        assert_eq!(agent, "test/1");
        assert!(remote.ip().is_loopback(), "{remote}");
    }

    // No request id (or an unusable one): the server makes one, 16 hex digits, and echoes it.
    let first = post(running.addr, "/echo", "application/json", "-1").await;
    let second = post(running.addr, "/echo", "application/json", "1").await;
    let (id1, id2) = (
        first.header("x-request-id").unwrap(),
        second.header("x-request-id").unwrap(),
    );
    assert_eq!(id1.len(), 16);
    assert!(id1.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(id1, id2);
    assert_eq!(first.status, 400);
    // After hooks run on successes only.
    assert_eq!(first.header("x-served-for"), None);
    assert_eq!(second.header("x-served-for"), Some("none"));

    running.stop().await.unwrap();
    let s = seen.lock().unwrap();
    assert_eq!(s.errors, ["negative"]);
    assert_eq!(
        s.finished,
        [
            (200, 2),
            (400, r#"{"error":"negative"}"#.len() as u64),
            (200, 1)
        ]
    );
}

#[tokio::test]
async fn the_server_is_a_tower_service_for_any_body_type() {
    use tower::ServiceExt;
    let request = http::Request::post("/sum")
        .body(http_body_util::Full::new(Bytes::from_static(
            br#"{"a":20,"b":22}"#,
        )))
        .unwrap();
    let response = router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], br#"{"v":42}"#);

    // A kit server under a tower middleware stack.
    let stacked = tower::ServiceBuilder::new()
        .map_request(|mut r: http::Request<http_body_util::Full<Bytes>>| {
            *r.uri_mut() = "/sum".parse().unwrap();
            r
        })
        .service(sum_server());
    let request = http::Request::post("/elsewhere")
        .body(http_body_util::Full::new(Bytes::from_static(
            br#"{"a":1,"b":1}"#,
        )))
        .unwrap();
    let response = stacked.oneshot(request).await.unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], br#"{"v":2}"#);
}

//! Interop with go-kit, proven by go-kit's own code (tests/gokit/peer.go, built from Debian's
//! go-kit 0.10): go-kit's HTTP, gRPC and JSON-RPC clients call this addsvc, addcli and kit-rs's
//! client endpoints call go-kit's servers, and one Zipkin trace runs across both.

mod support;

use std::process::Command;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use addsvc::service::errors::{INT_OVERFLOW, MAX_SIZE_EXCEEDED, TWO_ZEROES};
use addsvc::transport::{Transport, instance_clients};
use bytes::Bytes;
use kit_core::{Context, Endpoint, ErrorKind};
use kit_transport_http::jsonrpc::JsonRpcClient;
use serde_json::{Value, json};
use support::gokit::{self, Relay, http_message};
use support::{Running, collector, start_bin};

const ADDSVC: &str = env!("CARGO_BIN_EXE_addsvc");
const ADDCLI: &str = env!("CARGO_BIN_EXE_addcli");
const TRANSPORTS: [&str; 3] = ["http", "grpc", "jsonrpc"];

fn addr_of(running: &Running, transport: &str) -> std::net::SocketAddr {
    match transport {
        "http" => running.http,
        "grpc" => running.grpc,
        _ => running.jsonrpc,
    }
}

/// go-kit addsvc's rules at their boundaries: each call, and its answer (a value, or the
/// business error's message).
fn cases() -> Vec<(Value, Result<Value, &'static str>)> {
    vec![
        (json!(["sum", 1, 2]), Ok(json!(3))),
        (json!(["sum", 0, 0]), Err(TWO_ZEROES)),
        (json!(["sum", 0, 5]), Ok(json!(5))),
        (json!(["sum", 2147483646, 1]), Ok(json!(2147483647))),
        (json!(["sum", 2147483647, 1]), Err(INT_OVERFLOW)),
        (json!(["sum", 1, 2147483647]), Err(INT_OVERFLOW)),
        (json!(["sum", -2147483647, -1]), Ok(json!(-2147483648))),
        (json!(["sum", -2147483648, -1]), Err(INT_OVERFLOW)),
        // go-kit checks b against the bound, not the result: with b == 0 any a passes.
        (json!(["sum", 3000000000u64, 0]), Ok(json!(3000000000u64))),
        (json!(["sum", 3000000000u64, -1]), Ok(json!(2999999999u64))),
        (json!(["concat", "a", "b"]), Ok(json!("ab"))),
        (json!(["concat", "", ""]), Ok(json!(""))),
        (json!(["concat", "12345", "67890"]), Ok(json!("1234567890"))),
        (json!(["concat", "12345", "678901"]), Err(MAX_SIZE_EXCEEDED)),
        // Lengths in bytes, as Go's len: five two-byte characters are the most.
        (json!(["concat", "ééééé", ""]), Ok(json!("ééééé"))),
        (json!(["concat", "ééééé", "a"]), Err(MAX_SIZE_EXCEEDED)),
    ]
}

/// What go-kit's client for `transport` reports for `expected`, when the server is kit-rs's
/// addsvc (`gokit_server` false) or go-kit's (true).
fn seen_by_gokit(
    transport: &str,
    call: &Value,
    expected: &Result<Value, &str>,
    gokit_server: bool,
) -> Value {
    match (expected, transport) {
        (Ok(v), _) => json!({ "v": v }),
        (Err(message), "http") => json!({"err": message, "via": "http", "code": 400}),
        (Err(message), "grpc") => json!({"err": message, "via": "reply"}),
        // go-kit's JSON-RPC transport does not marshal the reply's error: the caller gets the
        // zero value. kit-rs answers a JSON-RPC error (-32000), as a JSON-RPC caller expects.
        (Err(_), _) if gokit_server => match call[0].as_str() {
            Some("sum") => json!({ "v": 0 }),
            _ => json!({ "v": "" }),
        },
        (Err(message), _) => json!({"err": message, "via": "jsonrpc", "code": -32000}),
    }
}

#[test]
fn go_kits_clients_get_go_kits_answers_from_addsvc_on_all_three_transports() {
    let Some(peer) = gokit::peer() else { return };
    let addsvc = start_bin(ADDSVC, &[]);
    let gokit_addsvc = gokit::serve(peer, None);
    let cases = cases();
    let calls: Vec<Value> = cases.iter().map(|(call, _)| call.clone()).collect();
    for transport in TRANSPORTS {
        for (server, gokit_server) in [(&addsvc, false), (&gokit_addsvc, true)] {
            let answers = gokit::call(peer, transport, addr_of(server, transport), None, &calls);
            for ((call, expected), answer) in cases.iter().zip(answers) {
                assert_eq!(
                    answer,
                    seen_by_gokit(transport, call, expected, gokit_server),
                    "{call} over {transport}, go-kit's server: {gokit_server}"
                );
            }
        }
    }
}

#[test]
fn what_go_kits_clients_put_on_the_wire_and_what_kit_rs_answers() {
    let Some(peer) = gokit::peer() else { return };
    let addsvc = start_bin(ADDSVC, &[]);

    // HTTP: go-kit's client sends the Go struct's field names, "A" and "B".
    let relay = Relay::to(addsvc.http);
    let answers = gokit::call(peer, "http", relay.addr, None, &[json!(["sum", 1, 2])]);
    assert_eq!(answers, [json!({"v": 3})]);
    let exchange = &relay.exchanges()[0];
    let (head, body) = http_message(&exchange.sent);
    assert_eq!(head[0], "POST /sum HTTP/1.1");
    assert!(
        head.contains(&"content-type: application/json; charset=utf-8".to_owned()),
        "{head:?}"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"A": 1, "B": 2})
    );
    let (head, body) = http_message(&exchange.answered);
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    assert_eq!(body, br#"{"v":3}"#);

    // JSON-RPC: go-kit's client sends "jsonrpc": "" and counts ids from 0, in a chunked body.
    let relay = Relay::to(addsvc.jsonrpc);
    let answers = gokit::call(
        peer,
        "jsonrpc",
        relay.addr,
        None,
        &[json!(["sum", 1, 2]), json!(["sum", 0, 0])],
    );
    assert_eq!(
        answers,
        [
            json!({"v": 3}),
            json!({"err": TWO_ZEROES, "via": "jsonrpc", "code": -32000})
        ]
    );
    let exchange = &relay.exchanges()[0];
    let (head, body) = http_message(&exchange.sent);
    assert_eq!(head[0], "POST / HTTP/1.1");
    assert!(
        head.contains(&"transfer-encoding: chunked".to_owned()),
        "{head:?}"
    );
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"jsonrpc": "", "method": "sum", "params": {"A": 1, "B": 2}, "id": 0})
    );
    let (_, body) = http_message(&exchange.answered);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"jsonrpc": "2.0", "result": {"v": 3}, "id": 0})
    );
}

#[test]
fn what_kit_rs_clients_put_on_the_wire_go_kits_servers_take() {
    let Some(peer) = gokit::peer() else { return };
    let gokit_addsvc = gokit::serve(peer, None);
    for (transport, target, flag) in [
        ("http", gokit_addsvc.http, "-http-addr"),
        ("jsonrpc", gokit_addsvc.jsonrpc, "-jsonrpc-addr"),
    ] {
        let relay = Relay::to(target);
        assert_eq!(
            addcli(&[flag, &relay.addr.to_string(), "1", "2"]),
            Ok("1 + 2 = 3".to_owned())
        );
        let exchange = &relay.exchanges()[0];
        let (head, body) = http_message(&exchange.sent);
        let body: Value = serde_json::from_slice(&body).unwrap();
        let (_, answer) = http_message(&exchange.answered);
        let answer: Value = serde_json::from_slice(&answer).unwrap();
        assert!(
            head.contains(&"content-type: application/json; charset=utf-8".to_owned()),
            "{transport}: {head:?}"
        );
        if transport == "http" {
            assert_eq!(head[0], "POST /sum HTTP/1.1");
            assert_eq!(body, json!({"a": 1, "b": 2}));
            assert_eq!(answer, json!({"v": 3}));
        } else {
            assert_eq!(head[0], "POST / HTTP/1.1");
            assert_eq!(
                body,
                json!({"jsonrpc": "2.0", "method": "sum", "params": {"a": 1, "b": 2}, "id": 1})
            );
            assert_eq!(
                answer,
                json!({"jsonrpc": "2.0", "result": {"v": 3}, "id": 1})
            );
        }
    }
}

/// addcli's printed line, or its error line.
fn addcli(args: &[&str]) -> Result<String, String> {
    let output = Command::new(ADDCLI).args(args).output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_owned();
    match output.status.success() {
        true => Ok(text(&output.stdout)),
        false => Err(text(&output.stderr)),
    }
}

#[test]
fn addcli_calls_go_kits_addsvc_on_all_three_transports() {
    let Some(peer) = gokit::peer() else { return };
    let gokit_addsvc = gokit::serve(peer, None);
    for (transport, flag) in [
        ("http", "-http-addr"),
        ("grpc", "-grpc-addr"),
        ("jsonrpc", "-jsonrpc-addr"),
    ] {
        let addr = addr_of(&gokit_addsvc, transport).to_string();
        let sum = |a: &str, b: &str| addcli(&[flag, &addr, "--", a, b]);
        let concat = |a: &str, b: &str| addcli(&[flag, &addr, "-method", "concat", a, b]);
        assert_eq!(sum("1", "2"), Ok("1 + 2 = 3".into()), "{transport}");
        assert_eq!(
            sum("-2147483648", "-1"),
            match transport {
                "jsonrpc" => Ok("-2147483648 + -1 = 0".into()),
                _ => Err(format!("addcli: {INT_OVERFLOW}")),
            },
            "{transport}"
        );
        assert_eq!(
            sum("3000000000", "0"),
            Ok("3000000000 + 0 = 3000000000".into()),
            "{transport}"
        );
        assert_eq!(
            concat("12345", "67890"),
            Ok(r#""12345" + "67890" = "1234567890""#.into())
        );
        assert_eq!(
            concat("12345", "678901"),
            match transport {
                "jsonrpc" => Ok(r#""12345" + "678901" = """#.into()),
                _ => Err(format!("addcli: {MAX_SIZE_EXCEEDED}")),
            },
            "{transport}"
        );
    }
}

#[tokio::test]
async fn kit_rs_clients_read_go_kits_errors_as_the_right_kinds() {
    let Some(peer) = gokit::peer() else { return };
    let gokit_addsvc = gokit::serve(peer, None);

    // Business errors: a 400 with the rule's message over HTTP, the reply's err over gRPC.
    for (transport, addr) in [
        (Transport::Http, gokit_addsvc.http),
        (Transport::Grpc, gokit_addsvc.grpc),
    ] {
        let clients = instance_clients(transport, &addr.to_string()).unwrap();
        let err = clients
            .sum
            .call(Context::new(), addsvc::service::SumRequest { a: 0, b: 0 })
            .await
            .unwrap_err();
        assert_eq!(
            (err.kind(), err.message()),
            (ErrorKind::Business, TWO_ZEROES),
            "{transport:?}"
        );
    }

    // go-kit's HTTP error encoder: anything not a business error is a 500 with {"error":..}:
    // internal, its text kept as the detail.
    let raw = kit_transport_http::Client::new(
        http::Method::POST,
        format!("http://{}/sum", gokit_addsvc.http).parse().unwrap(),
        |_cx, body: Bytes, out: &mut http::Request<Bytes>| {
            *out.body_mut() = body;
            Ok(())
        },
        |_cx, _response| Ok(()),
    );
    for (body, message) in [
        (&b"not json"[..], "invalid character"),
        (br#"{"a":1.5,"b":2}"#, "json: cannot unmarshal number 1.5"),
    ] {
        let err = raw
            .call(Context::new(), Bytes::from_static(body))
            .await
            .unwrap_err();
        // go-kit's text (its internals) is the detail, not the message a kit server would
        // pass on to its own callers.
        assert_eq!(
            (err.kind(), err.message()),
            (
                ErrorKind::Internal,
                "the upstream service failed: 500 Internal Server Error"
            )
        );
        let detail = err.detail().unwrap();
        assert!(
            detail.starts_with(&format!("500 Internal Server Error: {message}")),
            "{detail}"
        );
    }

    // go-kit's JSON-RPC errors come with a null id: an unknown method is unimplemented ...
    let uri: http::Uri = format!("http://{}/", gokit_addsvc.jsonrpc).parse().unwrap();
    let nosuch = JsonRpcClient::new(
        uri.clone(),
        "nosuch",
        |_cx, _: ()| Ok(json!({})),
        |_cx, v| Ok(v),
    );
    let err = nosuch.call(Context::new(), ()).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Unimplemented, "Method nosuch was not found.")
    );
    // ... and go-kit addsvc answers undecodable params in the server-error range (-32000),
    // which a kit client reads as the service's own (business) error; kit-rs answers -32602.
    let bad = JsonRpcClient::new(
        uri,
        "sum",
        |_cx, _: ()| Ok(json!({"A": "x"})),
        |_cx, v| Ok(v),
    );
    let err = bad.call(Context::new(), ()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Business);
    assert!(
        err.message()
            .starts_with("couldn't unmarshal body to sum request"),
        "{err}"
    );
}

/// Every span the collector has received, waiting up to 20 s for `done` to hold of them.
fn spans_until(received: &Receiver<Value>, all: &mut Vec<Value>, done: impl Fn(&[Value]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(all) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "spans never arrived: {all:#?}");
        if let Ok(body) = received.recv_timeout(left.min(Duration::from_millis(200))) {
            all.extend(body.as_array().unwrap().iter().cloned());
        }
    }
}

fn service(span: &Value) -> &str {
    span["localEndpoint"]["serviceName"].as_str().unwrap_or("")
}

fn span_with(all: &[Value], f: impl Fn(&Value) -> bool) -> Option<&Value> {
    all.iter().find(|s| f(s))
}

#[test]
fn one_trace_across_go_kit_and_kit_rs_in_both_directions() {
    let Some(peer) = gokit::peer() else { return };
    let (collector, received) = collector();
    let url = format!("http://{collector}/api/v2/spans");
    let addsvc = start_bin(ADDSVC, &["-zipkin-url", &url]);
    let gokit_addsvc = gokit::serve(peer, Some(&url));
    let mut all = Vec::new();

    // go-kit's clients, traced by go-kit's Zipkin middleware, call addsvc: addsvc's SERVER span
    // is a child of go-kit's CLIENT span, in go-kit's trace.
    for transport in ["http", "grpc"] {
        let answer = gokit::call(
            peer,
            transport,
            addr_of(&addsvc, transport),
            Some(&url),
            &[json!(["sum", 1, 2])],
        );
        assert_eq!(answer[0]["v"], 3, "{transport}");
        let trace = answer[0]["trace"].as_str().unwrap().to_owned();
        let in_trace = |s: &Value| s["traceId"] == trace.as_str();
        spans_until(&received, &mut all, |all| {
            span_with(all, |s| {
                in_trace(s) && s["name"] == "sum" && service(s) == "addsvc"
            })
            .is_some()
                && span_with(all, |s| in_trace(s) && s["kind"] == "CLIENT").is_some()
        });
        let root = span_with(&all, |s| in_trace(s) && s["name"] == "call sum").unwrap();
        assert_eq!(service(root), "gokit-addcli");
        let client = span_with(&all, |s| in_trace(s) && s["kind"] == "CLIENT").unwrap();
        assert_eq!(
            (service(client), &client["parentId"]),
            ("gokit-addcli", &root["id"])
        );
        let server = span_with(&all, |s| in_trace(s) && s["kind"] == "SERVER").unwrap();
        assert_eq!(
            (service(server), &server["parentId"]),
            ("addsvc", &client["id"]),
            "{transport}: {all:#?}"
        );
        let endpoint = span_with(&all, |s| in_trace(s) && s["name"] == "sum").unwrap();
        assert_eq!(endpoint["parentId"], server["id"], "{transport}");
    }

    // addcli, traced, calls go-kit's addsvc: go-kit's SERVER span shares addcli's CLIENT span
    // (zipkin-go's default), in addcli's trace.
    for (transport, flag) in [("http", "-http-addr"), ("grpc", "-grpc-addr")] {
        all.retain(|s| service(s) != "addcli" && service(s) != "gokit-addsvc");
        let addr = addr_of(&gokit_addsvc, transport).to_string();
        assert_eq!(
            addcli(&["-zipkin-url", &url, flag, &addr, "1", "2"]),
            Ok("1 + 2 = 3".into())
        );
        spans_until(&received, &mut all, |all| {
            span_with(all, |s| service(s) == "gokit-addsvc").is_some()
                && span_with(all, |s| service(s) == "addcli" && s["kind"] == "CLIENT").is_some()
        });
        let client = span_with(&all, |s| service(s) == "addcli" && s["kind"] == "CLIENT").unwrap();
        let root = span_with(&all, |s| {
            service(s) == "addcli" && s.get("parentId").is_none()
        })
        .expect("addcli's call span");
        assert_eq!(
            (&root["name"], &root["traceId"], &client["parentId"]),
            (&json!("sum"), &client["traceId"], &root["id"])
        );
        let server = span_with(&all, |s| service(s) == "gokit-addsvc").unwrap();
        assert_eq!(
            (
                &server["kind"],
                &server["traceId"],
                &server["id"],
                &server["shared"]
            ),
            (
                &json!("SERVER"),
                &client["traceId"],
                &client["id"],
                &json!(true)
            ),
            "{transport}: {all:#?}"
        );
    }
}

#[tokio::test]
async fn kit_rs_clients_get_go_kits_answers_at_every_boundary() {
    let Some(peer) = gokit::peer() else { return };
    let gokit_addsvc = gokit::serve(peer, None);
    for (transport, addr) in [
        (Transport::Http, gokit_addsvc.http),
        (Transport::Grpc, gokit_addsvc.grpc),
        (Transport::JsonRpc, gokit_addsvc.jsonrpc),
    ] {
        let clients = instance_clients(transport, &addr.to_string()).unwrap();
        for (call, expected) in cases() {
            let got: Result<Value, kit_core::Error> = match call[0].as_str().unwrap() {
                "sum" => {
                    let request = addsvc::service::SumRequest {
                        a: call[1].as_i64().unwrap(),
                        b: call[2].as_i64().unwrap(),
                    };
                    clients
                        .sum
                        .call(Context::new(), request)
                        .await
                        .map(Value::from)
                }
                _ => {
                    let request = addsvc::service::ConcatRequest {
                        a: call[1].as_str().unwrap().to_owned(),
                        b: call[2].as_str().unwrap().to_owned(),
                    };
                    clients
                        .concat
                        .call(Context::new(), request)
                        .await
                        .map(Value::from)
                }
            };
            match (expected, transport) {
                (Ok(v), _) => assert_eq!(got.unwrap(), v, "{call} over {transport:?}"),
                // go-kit's JSON-RPC transport loses the business error: the zero value comes.
                (Err(_), Transport::JsonRpc) => {
                    let zero = match call[0].as_str() {
                        Some("sum") => json!(0),
                        _ => json!(""),
                    };
                    assert_eq!(got.unwrap(), zero, "{call}");
                }
                (Err(message), _) => {
                    let err = got.unwrap_err();
                    assert_eq!(
                        (err.kind(), err.message()),
                        (ErrorKind::Business, message),
                        "{call} over {transport:?}"
                    );
                }
            }
        }
    }
}

//! JSON-RPC 2.0: the specification's examples (section 7) against the server, error codes, POST
//! only, and the client endpoint with its ids.

mod support;

use std::sync::{Arc, Mutex};

use kit_core::{Context, Endpoint, Error, ErrorKind, endpoint_fn};
use kit_transport_http::jsonrpc::{
    JsonRpcClient, JsonRpcServer, decode_params, decode_result, encode_params, encode_result,
};
use kit_transport_http::{Router, Server, json};
use serde::Deserialize;
use serde_json::{Value, json};
use support::{Running, post, raw};

#[derive(Deserialize)]
struct Named {
    subtrahend: i64,
    minuend: i64,
}

/// `subtract` takes positional or named params, as in the specification.
fn subtract(_cx: &Context, params: Value) -> Result<(i64, i64), Error> {
    match params {
        Value::Array(_) => decode_params(_cx, params),
        _ => decode_params::<Named>(_cx, params).map(|n| (n.minuend, n.subtrahend)),
    }
}

fn server() -> JsonRpcServer {
    let sub = endpoint_fn(|_cx, (a, b): (i64, i64)| async move { Ok::<_, Error>(a - b) });
    let sum = endpoint_fn(|_cx, v: Vec<i64>| async move { Ok::<_, Error>(v.iter().sum::<i64>()) });
    let get_data = endpoint_fn(|_cx, (): ()| async move { Ok::<_, Error>(json!(["hello", 5])) });
    let notify = endpoint_fn(|_cx, _: Value| async move { Ok::<_, Error>(()) });
    let divide = endpoint_fn(|_cx, (a, b): (i64, i64)| async move {
        match (a, b) {
            (0, 0) => Err(Error::business("can't divide zero by zero")),
            (_, 0) => Err(Error::internal("division by zero")),
            _ => Ok(a / b),
        }
    });
    JsonRpcServer::new()
        .method("subtract", sub, subtract, encode_result)
        .method("sum", sum, decode_params, encode_result)
        .method("get_data", get_data, |_, _| Ok(()), encode_result)
        .method("update", notify, decode_params, encode_result)
        .method(
            "notify_hello",
            endpoint_fn(|_cx, _: Value| async move { Ok::<_, Error>(()) }),
            decode_params,
            encode_result,
        )
        .method("divide", divide, decode_params, encode_result)
}

async fn rpc(running: &Running, body: &str) -> (u16, Option<Value>) {
    let response = post(running.addr, "/rpc", "application/json", body).await;
    let value = (!response.body.is_empty()).then(|| response.json());
    (response.status, value)
}

#[tokio::test]
async fn the_specification_examples() {
    let running = Running::serve(server()).await;
    let cases: Vec<(&str, &str, Option<Value>)> = vec![
        (
            "positional parameters",
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}"#,
            Some(json!({"jsonrpc": "2.0", "result": 19, "id": 1})),
        ),
        (
            "positional parameters, reversed",
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}"#,
            Some(json!({"jsonrpc": "2.0", "result": -19, "id": 2})),
        ),
        (
            "named parameters",
            r#"{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}"#,
            Some(json!({"jsonrpc": "2.0", "result": 19, "id": 3})),
        ),
        (
            "a notification",
            r#"{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}"#,
            None,
        ),
        (
            "a non-existent method",
            r#"{"jsonrpc": "2.0", "method": "foobar", "id": "1"}"#,
            Some(
                json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found: foobar"}, "id": "1"}),
            ),
        ),
        (
            "an invalid Request object",
            r#"{"jsonrpc": "2.0", "method": 1, "params": "bar"}"#,
            Some(
                json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request: method must be a string"}, "id": null}),
            ),
        ),
        (
            "an invalid Request object with an id",
            r#"{"jsonrpc": "2.0", "method": 1, "params": "bar", "id": 9}"#,
            Some(
                json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request: method must be a string"}, "id": 9}),
            ),
        ),
        (
            "an empty Array",
            r#"[]"#,
            Some(
                json!({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request: empty batch"}, "id": null}),
            ),
        ),
        (
            "an invalid Batch (but not empty)",
            r#"[1]"#,
            Some(
                json!([{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request: not an object"}, "id": null}]),
            ),
        ),
        (
            "an invalid Batch",
            r#"[1,2,3]"#,
            Some(json!([
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request: not an object"}, "id": null},
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request: not an object"}, "id": null},
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request: not an object"}, "id": null}
            ])),
        ),
        (
            "a Batch",
            r#"[
                {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
                {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
                {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
                {"foo": "boo"},
                {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
                {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
            ]"#,
            Some(json!([
                {"jsonrpc": "2.0", "result": 7, "id": "1"},
                {"jsonrpc": "2.0", "result": 19, "id": "2"},
                {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request: jsonrpc must be \"2.0\""}, "id": null},
                {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found: foo.get"}, "id": "5"},
                {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}
            ])),
        ),
        (
            "a Batch of notifications only",
            r#"[
                {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
                {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
            ]"#,
            None,
        ),
    ];
    for (name, body, expected) in cases {
        let (status, answer) = rpc(&running, body).await;
        assert_eq!(answer, expected, "{name}");
        assert_eq!(status, if expected.is_some() { 200 } else { 204 }, "{name}");
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn parse_errors_invalid_params_and_endpoint_errors_get_their_codes() {
    let running = Running::serve(server()).await;
    // The specification's invalid JSON examples: the message carries the parser's detail.
    for body in [
        r#"{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]"#,
        r#"[
            {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
            {"jsonrpc": "2.0", "method"
        ]"#,
    ] {
        let (status, answer) = rpc(&running, body).await;
        let answer = answer.unwrap();
        assert_eq!(status, 200);
        assert_eq!(answer["error"]["code"], -32700);
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Parse error: "),
            "{answer}"
        );
        assert_eq!(answer["id"], Value::Null);
    }
    let (_, answer) = rpc(
        &running,
        r#"{"jsonrpc":"2.0","method":"subtract","params":["x"],"id":4}"#,
    )
    .await;
    let answer = answer.unwrap();
    assert_eq!(answer["error"]["code"], -32602);
    assert_eq!(answer["error"]["data"], json!({"kind": "invalid_argument"}));

    let (_, answer) = rpc(
        &running,
        r#"{"jsonrpc":"2.0","method":"divide","params":[0,0],"id":5}"#,
    )
    .await;
    assert_eq!(
        answer.unwrap(),
        json!({"jsonrpc": "2.0", "error": {"code": -32000, "message": "can't divide zero by zero", "data": {"kind": "business"}}, "id": 5})
    );
    let (_, answer) = rpc(
        &running,
        r#"{"jsonrpc":"2.0","method":"divide","params":[1,0],"id":6}"#,
    )
    .await;
    assert_eq!(answer.unwrap()["error"]["code"], -32603);
    let (_, answer) = rpc(
        &running,
        r#"{"jsonrpc":"1.0","method":"divide","params":[4,2],"id":7}"#,
    )
    .await;
    assert_eq!(answer.unwrap()["error"]["code"], -32600);
    // go-kit's client sends an empty version: accepted; no version, or a number, is not.
    let (_, answer) = rpc(
        &running,
        r#"{"jsonrpc":"","method":"divide","params":[4,2],"id":0}"#,
    )
    .await;
    assert_eq!(
        answer.unwrap(),
        json!({"jsonrpc": "2.0", "result": 2, "id": 0})
    );
    for refused in [
        r#"{"method":"divide","params":[4,2],"id":7}"#,
        r#"{"jsonrpc":2.0,"method":"divide","params":[4,2],"id":7}"#,
        r#"{"jsonrpc":" ","method":"divide","params":[4,2],"id":7}"#,
    ] {
        let (_, answer) = rpc(&running, refused).await;
        assert_eq!(answer.unwrap()["error"]["code"], -32600, "{refused}");
    }
    let (_, answer) = rpc(
        &running,
        r#"{"jsonrpc":"2.0","method":"divide","params":[4,2],"id":{"a":1}}"#,
    )
    .await;
    assert_eq!(answer.unwrap()["error"]["code"], -32600);

    let get = raw(
        running.addr,
        b"GET /rpc HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));

    let (_, answer) = rpc(
        &running,
        r#"{"jsonrpc":"2.0","method":"divide","params":[9,3],"id":8}"#,
    )
    .await;
    assert_eq!(
        answer.unwrap(),
        json!({"jsonrpc": "2.0", "result": 3, "id": 8})
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn the_client_calls_methods_and_gets_kinds_back() {
    let running = Running::serve(server()).await;
    let uri = running.url("/rpc");
    let divide = JsonRpcClient::new(uri.clone(), "divide", encode_params, decode_result::<i64>);
    assert_eq!(divide.call(Context::new(), (9, 3)).await.unwrap(), 3);
    let err = divide.call(Context::new(), (0, 0)).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Business, "can't divide zero by zero")
    );
    let err = divide.call(Context::new(), (1, 0)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    let missing = JsonRpcClient::new(uri, "nope", encode_params, decode_result::<i64>);
    let err = missing.call(Context::new(), ()).await.unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Unimplemented, "Method not found: nope")
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn client_ids_count_up_and_a_mismatched_id_is_an_error() {
    // A plain HTTP endpoint that records the ids it is sent and answers with a chosen id.
    let ids = Arc::new(Mutex::new(Vec::new()));
    let fake = {
        let ids = Arc::clone(&ids);
        endpoint_fn(move |_cx, request: Value| {
            let ids = Arc::clone(&ids);
            async move {
                let id = request["id"].clone();
                ids.lock().unwrap().push(id.clone());
                // go-kit's server answers every error with a null id.
                if request["params"] == json!(["null-id error"]) {
                    return Ok::<_, Error>(
                        json!({"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method m was not found."}, "id": null}),
                    );
                }
                if request["params"] == json!(["null-id result"]) {
                    return Ok(json!({"jsonrpc": "2.0", "result": "ok", "id": null}));
                }
                let answer_id = if request["params"] == json!(["wrong"]) {
                    json!(999)
                } else {
                    id
                };
                Ok(json!({"jsonrpc": "2.0", "result": "ok", "id": answer_id}))
            }
        })
    };
    let router = Router::new().post(
        "/rpc",
        Server::new(fake, json::decode_request, json::encode_response),
    );
    let running = Running::serve(router).await;
    let client = JsonRpcClient::new(
        running.url("/rpc"),
        "m",
        encode_params,
        decode_result::<String>,
    );
    let clone = client.clone();
    assert_eq!(client.call(Context::new(), ["a"]).await.unwrap(), "ok");
    assert_eq!(clone.call(Context::new(), ["b"]).await.unwrap(), "ok");
    let err = client.call(Context::new(), ["wrong"]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    // An error with a null id is the server's answer; a result with one is not ours.
    let err = client
        .call(Context::new(), ["null-id error"])
        .await
        .unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Unimplemented, "Method m was not found.")
    );
    let err = client
        .call(Context::new(), ["null-id result"])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Internal);
    assert!(err.message().contains("does not match"), "{err}");
    assert_eq!(
        *ids.lock().unwrap(),
        [json!(1), json!(2), json!(3), json!(4), json!(5)]
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_batch_over_the_limit_is_one_error_and_the_server_keeps_serving() {
    let running = Running::serve(server().batch_limit(100)).await;
    // 1 MiB of [1,1,...] would be half a million answers: one error instead.
    let flood = format!("[{}]", vec!["1"; 200_000].join(","));
    let (status, answer) = rpc(&running, &flood).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        Some(json!({
            "jsonrpc": "2.0",
            "error": {"code": -32600, "message": "Invalid Request: a batch of 200000 calls is over the limit of 100"},
            "id": null
        }))
    );
    // A batch at the limit is answered call by call.
    let calls: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","method":"sum","params":[{i},1],"id":{i}}}"#))
        .collect();
    let (_, answer) = rpc(&running, &format!("[{}]", calls.join(","))).await;
    let answers = answer.unwrap();
    assert_eq!(answers.as_array().unwrap().len(), 100);
    assert_eq!(
        answers[99],
        json!({"jsonrpc": "2.0", "result": 100, "id": 99})
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn batch_calls_run_concurrently_up_to_the_limit_and_answer_in_order() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, p) = (now.clone(), peak.clone());
    let slow = endpoint_fn(move |_cx, (i,): (i64,)| {
        let (n, p) = (n.clone(), p.clone());
        async move {
            let in_flight = n.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(in_flight, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            n.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, Error>(i)
        }
    });
    let running = Running::serve(JsonRpcServer::new().batch_concurrency(4).method(
        "slow",
        slow,
        decode_params,
        encode_result,
    ))
    .await;
    let calls: Vec<String> = (0..12)
        .map(|i| format!(r#"{{"jsonrpc":"2.0","method":"slow","params":[{i}],"id":{i}}}"#))
        .collect();
    let (_, answer) = rpc(&running, &format!("[{}]", calls.join(","))).await;
    let ids: Vec<i64> = answer
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["result"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (0..12).collect::<Vec<_>>(),
        "answers keep the batch's order"
    );
    assert_eq!(
        peak.load(Ordering::SeqCst),
        4,
        "four at a time, not one, not twelve"
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_one_sent_too_slowly_408() {
    let running = Running::serve(
        server().options(
            kit_transport_http::ServerOptions::new()
                .body_limit(64)
                .body_read_timeout(std::time::Duration::from_millis(300)),
        ),
    )
    .await;
    let call = r#"{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}"#;
    let padded = format!("{call}{}", " ".repeat(64));
    let (status, answer) = rpc(&running, &padded).await;
    assert_eq!(status, 413, "{answer:?}");
    // Ten of fifty promised bytes, then nothing.
    let slow = raw(
        running.addr,
        b"POST /rpc HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\nConnection: close\r\n\r\n{\"jsonrpc\"",
    )
    .await;
    assert_eq!(slow.status, 408, "{slow:?}");
    assert!(
        slow.json()["error"]
            .as_str()
            .unwrap()
            .contains("did not arrive")
    );
    // Within the limits, served.
    assert_eq!(rpc(&running, call).await.1.unwrap()["result"], 3);
    running.stop().await.unwrap();
}

#[tokio::test]
async fn the_servers_options_and_the_clients_hooks_run_around_json_rpc_calls() {
    use kit_transport_http::{Finished, RequestInfo, ServerOptions};
    struct Tenant(String);
    let finished: Arc<Mutex<Vec<(u16, u64)>>> = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let options = {
        let (finished, errors) = (Arc::clone(&finished), Arc::clone(&errors));
        ServerOptions::new()
            .before(|cx, parts| match parts.headers.get("x-tenant") {
                Some(t) => cx.with_value(Tenant(t.to_str().unwrap_or("").to_owned())),
                None => cx,
            })
            .after(|cx, head| {
                let path = cx.get::<RequestInfo>().map(|r| r.path().to_owned());
                head.headers
                    .insert("x-served-path", path.unwrap_or_default().parse().unwrap());
            })
            .error_handler(move |_cx, err| errors.lock().unwrap().push(err.message().to_owned()))
            .finalizer(move |_cx, done: &Finished| {
                finished
                    .lock()
                    .unwrap()
                    .push((done.status.as_u16(), done.bytes_written));
            })
    };
    let server = JsonRpcServer::new()
        .method(
            "tenant",
            endpoint_fn(|cx: Context, ()| async move {
                match cx.get::<Tenant>() {
                    Some(Tenant(t)) if t == "nobody" => Err(Error::business("no such tenant")),
                    Some(Tenant(t)) => Ok(t.clone()),
                    None => Ok(String::new()),
                }
            }),
            |_cx, _params| Ok(()),
            encode_result,
        )
        .options(options);
    let running = Running::serve(server).await;
    let served_paths: Arc<Mutex<Vec<String>>> = Arc::default();
    let client = |tenant: &'static str| {
        let served_paths = Arc::clone(&served_paths);
        JsonRpcClient::new(
            running.url("/rpc"),
            "tenant",
            encode_params,
            decode_result::<String>,
        )
        .before(move |_cx, request| {
            request
                .headers_mut()
                .insert("x-tenant", tenant.parse().unwrap());
        })
        .after(move |_cx, head| {
            let path = head
                .headers
                .get("x-served-path")
                .map(|v| v.to_str().unwrap().to_owned());
            served_paths.lock().unwrap().push(path.unwrap_or_default());
        })
    };
    assert_eq!(
        client("acme").call(Context::new(), ()).await.unwrap(),
        "acme"
    );
    let err = client("nobody").call(Context::new(), ()).await.unwrap_err();
    assert_eq!(err.message(), "no such tenant");
    // The server's after hook set a header on both answers (a JSON-RPC error is a 200), the
    // client's after hook read it; the error handler saw the call's error; the finalizer saw
    // two 200s with their lengths.
    assert_eq!(*served_paths.lock().unwrap(), ["/rpc", "/rpc"]);
    assert_eq!(*errors.lock().unwrap(), ["no such tenant"]);
    let finished = finished.lock().unwrap().clone();
    assert_eq!(finished.iter().map(|f| f.0).collect::<Vec<_>>(), [200, 200]);
    assert!(finished.iter().all(|f| f.1 > 0), "{finished:?}");
    running.stop().await.unwrap();
}

//! addsvc end to end: the real binary started on free loopback ports, called over every
//! transport with the wire formats go-kit's clients send, with every bad input; addcli against
//! it over all three transports; and the graceful drain on a real SIGTERM.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use addsvc::pb;

mod support;

use support::{Running, collector, http, post, read_response, start_bin, wait_exit};

/// The addsvc binary on free loopback ports, with `extra` flags.
fn start(extra: &[&str]) -> Running {
    start_bin(env!("CARGO_BIN_EXE_addsvc"), extra)
}

#[test]
fn http_speaks_go_kits_addsvc_json_and_refuses_bad_input() {
    let svc = start(&[]);
    let ok = |path: &str, body: &str, v: &str| {
        assert_eq!(
            post(svc.http, path, body),
            (200, format!("{{\"v\":{v}}}")),
            "{path} {body}"
        );
    };
    // go-kit's Go client sends capitalised member names.
    ok("/sum", r#"{"A":1,"B":2}"#, "3");
    ok("/sum", r#"{"a":-5,"b":2}"#, "-3");
    ok("/sum", r#"{"a":2147483646,"b":1}"#, "2147483647");
    ok("/sum", r#"{"a":7}"#, "7");
    // Go's decoding: null leaves a member as it was, others are ignored, the last of a
    // repeated member counts, names are read unescaped.
    ok("/sum", r#"{"a":null,"b":2,"c":[1,{"x":2}]}"#, "2");
    ok("/sum", r#"{"a":1,"A":4,"b":1,"a":null}"#, "5");
    ok("/sum", r#"{"\u0041":5,"b":2}"#, "7");
    ok("/concat", r#"{"A":"a","B":"b"}"#, r#""ab""#);
    ok("/concat", r#"{"a":"12345","b":"67890"}"#, r#""1234567890""#);

    let refused = |path: &str, body: &str, status: u16, error: &str| {
        let (got_status, got_body) = post(svc.http, path, body);
        assert_eq!(got_status, status, "{path} {body}: {got_body}");
        let json: serde_json::Value = serde_json::from_str(&got_body).unwrap();
        let message = json["error"].as_str().unwrap();
        assert!(message.contains(error), "{path} {body}: {message}");
    };
    // The three business errors, with go-kit's messages.
    refused("/sum", r#"{"a":0,"b":0}"#, 400, "can't sum two zeroes");
    refused("/sum", r#"{"a":2147483647,"b":1}"#, 400, "integer overflow");
    refused(
        "/sum",
        r#"{"a":-2147483648,"b":-1}"#,
        400,
        "integer overflow",
    );
    refused(
        "/concat",
        r#"{"a":"123456","b":"78901"}"#,
        400,
        "result exceeds maximum size",
    );
    // Requests that do not decode.
    refused("/sum", "not json", 400, "malformed JSON");
    refused("/sum", "", 400, "malformed JSON");
    refused("/sum", "[1,2]", 400, "expected a JSON object");
    refused("/sum", r#"{"a":"1","b":2}"#, 400, "expected i64");
    refused("/sum", r#"{"a":1.5,"b":2}"#, 400, "expected i64");
    refused(
        "/sum",
        r#"{"a":99999999999999999999,"b":2}"#,
        400,
        "expected i64",
    );
    refused("/concat", r#"{"a":1,"b":"x"}"#, 400, "expected a string");
    refused("/sum", r#"{"a":1,"b":2} x"#, 400, "trailing characters");
    // The router and the body limit.
    refused("/nope", "{}", 404, "no route");
    let (status, _) = http(svc.http, "GET", "/sum", b"");
    assert_eq!(status, 405);
    // A body declared over the 1 MiB limit is refused from its Content-Length alone.
    let mut stream = TcpStream::connect(svc.http).unwrap();
    stream
        .write_all(b"POST /concat HTTP/1.1\r\nHost: addsvc\r\nContent-Length: 4194304\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut stream).0, 413);
    // Still serving.
    ok("/sum", r#"{"a":1,"b":2}"#, "3");
}

#[test]
fn jsonrpc_and_grpc_speak_go_kits_addsvc() {
    let svc = start(&[]);
    let rpc = |body: &str| -> serde_json::Value {
        let (status, body) = post(svc.jsonrpc, "/", body);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let r = rpc(r#"{"jsonrpc":"2.0","method":"sum","params":{"A":1,"B":2},"id":1}"#);
    assert_eq!(r["result"], serde_json::json!({"v": 3}), "{r}");
    let r = rpc(r#"{"jsonrpc":"2.0","method":"concat","params":{"a":"a","b":"b"},"id":"x"}"#);
    assert_eq!(r["result"], serde_json::json!({"v": "ab"}), "{r}");
    assert_eq!(r["id"], "x");
    let r = rpc(r#"{"jsonrpc":"2.0","method":"sum","params":{"a":0,"b":0},"id":2}"#);
    assert_eq!(r["error"]["message"], "can't sum two zeroes", "{r}");
    assert_eq!(r["error"]["code"], -32000);
    let r =
        rpc(r#"{"jsonrpc":"2.0","method":"concat","params":{"a":"123456","b":"78901"},"id":3}"#);
    assert_eq!(r["error"]["message"], "result exceeds maximum size", "{r}");
    // Bad input: params of the wrong shape, an unknown method, not JSON at all.
    let r = rpc(r#"{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":4}"#);
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = rpc(r#"{"jsonrpc":"2.0","method":"product","params":{},"id":5}"#);
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let r = rpc("{oops");
    assert_eq!(r["error"]["code"], -32700, "{r}");
    let r = rpc(r#"{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":6}"#);
    assert_eq!(r["result"]["v"], 3);

    // gRPC with tonic's generated client, as go-kit's gRPC client calls it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut client = pb::add_client::AddClient::connect(format!("http://{}", svc.grpc))
            .await
            .unwrap();
        let sum = |a, b| pb::SumRequest { a, b };
        let reply = client.sum(sum(1, 2)).await.unwrap().into_inner();
        assert_eq!((reply.v, reply.err.as_str()), (3, ""));
        // Business errors travel in err, with status OK.
        let reply = client.sum(sum(0, 0)).await.unwrap().into_inner();
        assert_eq!((reply.v, reply.err.as_str()), (0, "can't sum two zeroes"));
        let reply = client.sum(sum(i64::MAX, 1)).await.unwrap().into_inner();
        assert_eq!(reply.err, "integer overflow");
        let concat = |a: &str, b: &str| pb::ConcatRequest {
            a: a.into(),
            b: b.into(),
        };
        let reply = client.concat(concat("a", "b")).await.unwrap().into_inner();
        assert_eq!((reply.v.as_str(), reply.err.as_str()), ("ab", ""));
        let reply = client
            .concat(concat("123456", "78901"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.err, "result exceeds maximum size");
        // The health service knows pb.Add.
        let mut health = tonic_health_client(svc.grpc).await;
        let status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "pb.Add".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            status.status(),
            tonic_health::pb::health_check_response::ServingStatus::Serving
        );
    });

    // Every call above was counted: the debug port's metrics say so.
    let (status, metrics) = http(svc.debug, "GET", "/metrics", b"");
    assert_eq!(status, 200);
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series).map(|v| v.trim().parse().unwrap()))
            .unwrap_or_else(|| panic!("{series} in\n{metrics}"))
    };
    // Sums that succeeded: 3 + 3 (JSON-RPC) + 3 (gRPC).
    assert_eq!(value("example_addsvc_integers_summed "), 9.0);
    // "ab" twice.
    assert_eq!(value("example_addsvc_characters_concatenated "), 4.0);
    assert_eq!(
        value(r#"example_addsvc_requests_total{method="sum",outcome="rejected",success="false"} "#),
        3.0
    );
    assert_eq!(http(svc.debug, "GET", "/healthz", b"").0, 200);
    assert_eq!(
        http(svc.debug, "GET", "/readyz", b""),
        (200, "ready\n".into())
    );
}

async fn tonic_health_client(
    addr: SocketAddr,
) -> tonic_health::pb::health_client::HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic_health::pb::health_client::HealthClient::new(channel)
}

#[test]
fn addcli_calls_addsvc_over_all_three_transports() {
    let svc = start(&[]);
    let addcli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_addcli"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        )
    };
    for (flag, addr) in [
        ("-http-addr", svc.http),
        ("-grpc-addr", svc.grpc),
        ("-jsonrpc-addr", svc.jsonrpc),
    ] {
        let addr = addr.to_string();
        let ok = |args: &[&str], line: &str| {
            let mut all = vec![flag, addr.as_str()];
            all.extend_from_slice(args);
            assert_eq!(
                addcli(&all),
                (Some(0), line.to_owned(), String::new()),
                "{all:?}"
            );
        };
        ok(&["1", "2"], "1 + 2 = 3");
        ok(&["-method", "sum", "-5", "2"], "-5 + 2 = -3");
        ok(&["-method", "concat", "a", "b"], r#""a" + "b" = "ab""#);
        let failed = |args: &[&str], error: &str| {
            let mut all = vec![flag, addr.as_str()];
            all.extend_from_slice(args);
            let (code, out, err) = addcli(&all);
            assert_eq!(code, Some(1), "{all:?}: {out} {err}");
            assert!(out.is_empty() && err.contains(error), "{all:?}: {err}");
        };
        failed(&["0", "0"], "can't sum two zeroes");
        failed(&["2147483647", "1"], "integer overflow");
        failed(
            &["-method", "concat", "123456", "78901"],
            "result exceeds maximum size",
        );
        failed(&["x", "1"], "\"x\" is not an integer");
        // A bad command line is clap's usage error: exit 2.
        for (args, error) in [
            (&["1"][..], "<B>"),
            (
                &["-method", "product", "1", "2"],
                "[possible values: sum, concat]",
            ),
        ] {
            let mut all = vec![flag, addr.as_str()];
            all.extend_from_slice(args);
            let (code, _, err) = addcli(&all);
            assert_eq!(code, Some(2), "{all:?}: {err}");
            assert!(err.contains(error), "{all:?}: {err}");
        }
    }
    let (code, _, err) = addcli(&["1", "2"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("<--http-addr <HTTP_ADDR>|--grpc-addr <GRPC_ADDR>|--jsonrpc-addr"),
        "{err}"
    );
    // Nothing listening there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let gone = closed.local_addr().unwrap().to_string();
    drop(closed);
    for flag in ["-http-addr", "-grpc-addr", "-jsonrpc-addr"] {
        let (code, _, err) = addcli(&[flag, &gone, "1", "2"]);
        assert_eq!(code, Some(1), "{flag}: {err}");
        assert!(!err.is_empty());
    }
}

#[test]
fn bad_flags_are_refused_before_anything_starts() {
    for (args, error) in [
        (vec!["-http-addr", "nowhere"], "not a listen address"),
        (vec!["-log.format", "xml"], "not logfmt or json"),
        (vec!["-drain-timeout", "5"], "not a duration"),
        (
            vec!["-zipkin-url", "ftp://127.0.0.1/spans"],
            "not an http:// URL",
        ),
        (vec!["-nope"], "unexpected argument '--nope'"),
        (vec!["-max-in-flight=0"], "not a positive integer"),
        (vec!["stray"], "unexpected argument"),
        (vec!["-rate-limit", "fast"], "-rate-limit"),
        (vec!["-breaker", "yes"], "-breaker"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_addsvc"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(error), "{args:?}: {err}");
    }
    // Help is clap's, on stdout, with go-kit's flag names and the defaults.
    let out = Command::new(env!("CARGO_BIN_EXE_addsvc"))
        .arg("-help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for line in [
        "--http-addr <HTTP_ADDR>",
        "--debug.addr",
        "[default: :8081]",
        "--log.format <logfmt|json>",
    ] {
        assert!(help.contains(line), "{line}: {help}");
    }
    // A port in use fails the start, with a non-zero exit.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_addsvc"))
        .args(["-http-addr", &taken.local_addr().unwrap().to_string()])
        .args(["-debug.addr", "127.0.0.1:0", "-grpc-addr", "127.0.0.1:0"])
        .args(["-jsonrpc-addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("in use"));
}

#[test]
fn json_logs_by_flag() {
    let svc = start(&["-log.format", "json"]);
    assert_eq!(post(svc.http, "/sum", r#"{"a":1,"b":2}"#).0, 200);
    let line = loop {
        let line = svc.logs.recv_timeout(Duration::from_secs(10)).unwrap();
        if line.contains("\"method\"") {
            break line;
        }
    };
    let record: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(record["method"], "sum");
    assert_eq!(record["outcome"], "success");
    // The caller is addsvc's own code, where the stack was made, not kit-log's middleware.
    let caller = record["caller"].as_str().unwrap();
    assert!(
        caller.starts_with("examples/addsvc/src/lib.rs:"),
        "{caller}"
    );
}

#[test]
fn instrument_false_serves_without_request_logs_or_metrics() {
    let requests = |svc: &Running| {
        http(svc.debug, "GET", "/metrics", b"")
            .1
            .lines()
            .filter(|l| l.starts_with("example_addsvc_requests_total{"))
            .count()
    };
    for (instrument, logged) in [("true", true), ("false", false)] {
        let svc = start(&["-instrument", instrument]);
        assert_eq!(post(svc.http, "/sum", r#"{"a":1,"b":2}"#).0, 200);
        assert_eq!(requests(&svc) > 0, logged, "-instrument {instrument}");
        let mut call_lines = 0;
        while let Ok(line) = svc.logs.recv_timeout(Duration::from_millis(500)) {
            call_lines += usize::from(line.contains("method=sum"));
        }
        assert_eq!(call_lines > 0, logged, "-instrument {instrument}");
    }
}

/// A request whose body is half sent: in flight from the server's side until `finish`.
struct SlowHttp {
    stream: TcpStream,
    rest: &'static [u8],
}

impl SlowHttp {
    fn start(addr: SocketAddr, path: &str, body: &'static str) -> SlowHttp {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: addsvc\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        let (first, rest) = body.as_bytes().split_at(body.len() / 2);
        stream.write_all(first).unwrap();
        stream.flush().unwrap();
        SlowHttp { stream, rest }
    }

    fn finish(mut self) -> (u16, String) {
        self.stream.write_all(self.rest).unwrap();
        // The server closes the connection after answering: the drain ends keep-alive.
        read_response(&mut self.stream)
    }
}

/// `count` HTTP/2 requests to `path` on `addr`, `per_connection` to a connection, each having
/// sent its head and the first half of `body`: in flight from the server's side until `go`
/// turns true, when each sends the rest. Each task answers the response's status, body and
/// `grpc-status` trailer.
type H2Answer = (u16, Vec<u8>, Option<String>);

async fn half_sent_h2(
    addr: SocketAddr,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    count: usize,
    per_connection: usize,
) -> (
    tokio::sync::watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<H2Answer>>,
) {
    let (go, _) = tokio::sync::watch::channel(false);
    let mut calls = Vec::new();
    let (first, rest) = body.split_at(body.len() / 2);
    let (first, rest) = (
        bytes::Bytes::from(first.to_vec()),
        bytes::Bytes::from(rest.to_vec()),
    );
    for _ in 0..count.div_ceil(per_connection) {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (send, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        for _ in 0..per_connection.min(count - calls.len()) {
            let request = http::Request::post(path)
                .header("content-type", content_type)
                .header("te", "trailers")
                .body(())
                .unwrap();
            let mut ready = send.clone().ready().await.unwrap();
            let (response, mut stream) = ready.send_request(request, false).unwrap();
            stream.send_data(first.clone(), false).unwrap();
            let (rest, mut go) = (rest.clone(), go.subscribe());
            calls.push(tokio::spawn(async move {
                let _ = go.wait_for(|go| *go).await;
                stream.send_data(rest, true).unwrap();
                let response = response.await.unwrap();
                let status = response.status().as_u16();
                let mut body = response.into_body();
                let mut data = Vec::new();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.unwrap();
                    let _ = body.flow_control().release_capacity(chunk.len());
                    data.extend_from_slice(&chunk);
                }
                let trailers = body.trailers().await.unwrap().unwrap_or_default();
                let grpc_status = trailers
                    .get("grpc-status")
                    .map(|v| v.to_str().unwrap().to_owned());
                (status, data, grpc_status)
            }));
        }
    }
    (go, calls)
}

#[test]
fn sigterm_with_a_thousand_requests_in_flight_answers_every_one_then_exits_zero() {
    let mut svc = start(&["-drain-timeout", "30s"]);
    // 1,000 requests in flight, each having sent half its body: 300 over HTTP/1.1 (HTTP/JSON
    // and JSON-RPC), 300 over HTTP/2 (h2c, 100 streams to a connection) and 400 gRPC calls.
    let mut slow = Vec::new();
    for i in 0..300 {
        let (addr, path, body) = if i % 2 == 0 {
            (svc.http, "/sum", r#"{"a":40,"b":2}"#)
        } else {
            (
                svc.jsonrpc,
                "/",
                r#"{"jsonrpc":"2.0","method":"sum","params":{"a":40,"b":2},"id":1}"#,
            )
        };
        slow.push(SlowHttp::start(addr, path, body));
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (http_addr, grpc_addr) = (svc.http, svc.grpc);
    let (h2_go, h2_calls) = runtime.block_on(half_sent_h2(
        http_addr,
        "/sum",
        "application/json",
        br#"{"a":40,"b":2}"#.to_vec(),
        300,
        100,
    ));
    let message = prost::Message::encode_to_vec(&pb::SumRequest { a: 40, b: 2 });
    let mut frame = vec![0];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    let (grpc_go, grpc_calls) = runtime.block_on(half_sent_h2(
        grpc_addr,
        "/pb.Add/Sum",
        "application/grpc",
        frame,
        400,
        100,
    ));
    // Time for the server to read the requests' heads (what makes them in flight).
    std::thread::sleep(Duration::from_secs(1));

    let sigterm = std::time::Instant::now();
    let pid = svc.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    // Draining: not ready, while the debug port still answers; new connections are refused.
    let mut not_ready = false;
    for _ in 0..50 {
        if http(svc.debug, "GET", "/readyz", b"") == (503, "not ready\n".into()) {
            not_ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(not_ready, "/readyz turns 503 during the drain");
    let refused = |addr| {
        (0..50).any(|_| {
            std::thread::sleep(Duration::from_millis(20));
            TcpStream::connect(addr).is_err()
        })
    };
    assert!(refused(svc.http), "the HTTP port stops accepting");
    assert!(refused(svc.grpc), "the gRPC port stops accepting");

    // Every in-flight request completes.
    for (i, request) in slow.into_iter().enumerate() {
        let (status, body) = request.finish();
        assert_eq!(status, 200, "request {i}: {body}");
        assert!(body.contains(r#""v":42"#), "request {i}: {body}");
    }
    h2_go.send(true).unwrap();
    grpc_go.send(true).unwrap();
    runtime.block_on(async {
        for call in h2_calls {
            let (status, body, _) = call.await.unwrap();
            assert_eq!((status, body.as_slice()), (200, &br#"{"v":42}"#[..]));
        }
        for call in grpc_calls {
            let (status, body, grpc_status) = call.await.unwrap();
            assert_eq!((status, grpc_status.as_deref()), (200, Some("0")));
            let reply: pb::SumReply = prost::Message::decode(&body[5..]).unwrap();
            assert_eq!(reply.v, 42);
        }
    });

    let status = wait_exit(&mut svc.child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "a clean drain exits 0");
    // Within the drain deadline (30 s, and 1 s more for the group).
    assert!(sigterm.elapsed() < Duration::from_secs(31));
    // Every line, until the reader thread sees the pipe close.
    let mut logs = Vec::new();
    while let Ok(line) = svc.logs.recv_timeout(Duration::from_secs(5)) {
        logs.push(line);
    }
    assert!(
        logs.iter()
            .any(|l| l.contains("msg=stopped") && !l.contains("err=")),
        "{logs:#?}"
    );
}

#[test]
fn zipkin_tracing_by_flag_continues_the_callers_trace() {
    let (collector, spans) = collector();
    let url = format!("http://{collector}/api/v2/spans");
    let mut svc = start(&["-zipkin-url", &url]);
    // A Zipkin-instrumented caller's B3 headers.
    let mut stream = TcpStream::connect(svc.http).unwrap();
    stream
        .write_all(
            b"POST /sum HTTP/1.1\r\nHost: addsvc\r\nX-B3-TraceId: 48485a3953bb6124\r\nX-B3-SpanId: a2fb4a1d1a96d312\r\nX-B3-Sampled: 1\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"a\":1,\"b\":2}",
        )
        .unwrap();
    assert_eq!(read_response(&mut stream), (200, r#"{"v":3}"#.to_owned()));
    // The spans are flushed when the drain ends.
    let pid = svc.child.id().to_string();
    assert!(
        Command::new("sh")
            .args(["-c", &format!("kill -TERM {pid}")])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        wait_exit(&mut svc.child, Duration::from_secs(20)).code(),
        Some(0)
    );
    let mut all = Vec::new();
    while let Ok(body) = spans.recv_timeout(Duration::from_secs(2)) {
        all.extend(body.as_array().unwrap().iter().cloned());
    }
    let server = all
        .iter()
        .find(|s| s["kind"] == "SERVER")
        .expect("a server span");
    assert_eq!(server["traceId"], "48485a3953bb6124");
    assert_eq!(server["parentId"], "a2fb4a1d1a96d312");
    assert_eq!(server["name"], "post /sum");
    assert_eq!(server["localEndpoint"]["serviceName"], "addsvc");
    let endpoint = all
        .iter()
        .find(|s| s["name"] == "sum")
        .expect("an endpoint span");
    assert_eq!(endpoint["parentId"], server["id"]);
}

#[test]
fn the_rate_limit_flag_refuses_calls_over_the_rate_with_429_and_keeps_serving() {
    let svc = start(&["-rate-limit", "3", "-breaker", "true"]);
    let statuses: Vec<(u16, String)> = (0..10)
        .map(|_| post(svc.http, "/sum", r#"{"a":1,"b":2}"#))
        .collect();
    let ok = statuses.iter().filter(|(s, _)| *s == 200).count();
    let limited: Vec<&(u16, String)> = statuses.iter().filter(|(s, _)| *s == 429).collect();
    // A burst of 3, then a token every third of a second: the ten calls take far less.
    assert!((3..=5).contains(&ok), "{statuses:?}");
    assert_eq!(ok + limited.len(), 10, "{statuses:?}");
    assert_eq!(limited[0].1, r#"{"error":"rate limit exceeded"}"#);
    // The limit is per method: concat has its own.
    assert_eq!(post(svc.http, "/concat", r#"{"a":"x","b":"y"}"#).0, 200);
    // The breaker sits below the limit and never sees its refusals; calls are served again
    // once tokens come back.
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(
        post(svc.http, "/sum", r#"{"a":1,"b":2}"#),
        (200, r#"{"v":3}"#.to_owned())
    );
}

#[test]
fn with_a_readiness_delay_readyz_fails_first_and_the_listeners_accept_until_it_passes() {
    let delay = Duration::from_millis(1500);
    let mut svc = start(&["-readiness-delay", "1500ms"]);
    assert_eq!(http(svc.debug, "GET", "/readyz", b"").0, 200);
    let sigterm = std::time::Instant::now();
    let pid = svc.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Readiness turns false at once ...
    while http(svc.debug, "GET", "/readyz", b"").0 != 503 {
        assert!(
            sigterm.elapsed() < Duration::from_secs(5),
            "/readyz never failed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // ... while new connections are still accepted and served on every transport, as a load
    // balancer that has not yet seen /readyz fail sends them.
    assert_eq!(
        post(svc.http, "/sum", r#"{"a":1,"b":2}"#),
        (200, r#"{"v":3}"#.to_owned())
    );
    let (status, body) = post(
        svc.jsonrpc,
        "/",
        r#"{"jsonrpc":"2.0","method":"sum","params":{"a":1,"b":2},"id":1}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert!(TcpStream::connect(svc.grpc).is_ok());
    // Only after the delay do the listeners stop accepting.
    while TcpStream::connect(svc.http).is_ok() {
        assert!(
            sigterm.elapsed() < Duration::from_secs(10),
            "still accepting"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        sigterm.elapsed() >= delay,
        "refused after {:?}",
        sigterm.elapsed()
    );
    assert_eq!(
        wait_exit(&mut svc.child, Duration::from_secs(20)).code(),
        Some(0)
    );
}

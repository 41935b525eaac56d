//! The JSON-RPC server answering any request body (single calls, batches, notifications,
//! garbage): a JSON answer or none, never a panic.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kit_core::{Error, endpoint_fn};
use kit_transport_http::jsonrpc::{JsonRpcServer, decode_params, encode_result};
use libfuzzer_sys::fuzz_target;

static SERVER: LazyLock<JsonRpcServer> = LazyLock::new(|| {
    JsonRpcServer::new()
        .batch_limit(16)
        .method(
            "sum",
            endpoint_fn(|_cx, (a, b): (i64, i64)| async move {
                a.checked_add(b)
                    .ok_or_else(|| Error::business("integer overflow"))
            }),
            decode_params,
            encode_result,
        )
        .method(
            "echo",
            endpoint_fn(|_cx, v: serde_json::Value| async move { Ok::<_, Error>(v) }),
            decode_params,
            encode_result,
        )
});

fuzz_target!(|data: &[u8]| {
    let request = http::Request::post("/")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(data)))
        .unwrap();
    let response = kit_fuzz::block_on(SERVER.handle(request));
    let status = response.status().as_u16();
    let body = kit_fuzz::block_on(response.into_body().collect())
        .unwrap()
        .to_bytes();
    match status {
        // A notification (or a batch of them) gets no answer.
        204 => assert!(body.is_empty()),
        200 | 400 | 413 => {
            serde_json::from_slice::<serde_json::Value>(&body).expect("a JSON answer");
        }
        other => panic!("status {other}"),
    }
});

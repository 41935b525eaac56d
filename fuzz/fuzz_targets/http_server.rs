//! A kit HTTP `Server` (body limit, JSON decoding, the endpoint, encoding, the error encoder)
//! answering any request body: it answers, and never panics.
#![no_main]

use bytes::Bytes;
use http_body_util::Full;
use kit_core::{Error, endpoint_fn};
use kit_transport_http::{Server, ServerOptions, json};
use libfuzzer_sys::fuzz_target;

#[derive(serde::Deserialize, serde::Serialize)]
struct Sum {
    a: i64,
    b: i64,
    #[serde(default)]
    tags: Vec<String>,
}

fuzz_target!(|data: &[u8]| {
    let sum = endpoint_fn(|_cx, r: Sum| async move {
        r.a.checked_add(r.b)
            .ok_or_else(|| Error::business("integer overflow"))
    });
    let server = Server::new(sum, json::decode_request, json::encode_response)
        .options(ServerOptions::new().body_limit(4096));
    let request = http::Request::post("/sum")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(data)))
        .unwrap();
    let response = kit_fuzz::block_on(server.handle(request));
    let status = response.status().as_u16();
    assert!(matches!(status, 200 | 400 | 413), "{status}");
});

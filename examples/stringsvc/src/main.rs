//! stringsvc: the smallest kit-rs service, after go-kit's stringsvc1. Two endpoints over
//! HTTP/JSON: `POST /uppercase {"s":"hello"}` answers `{"v":"HELLO"}` (an empty string is a
//! 400 error), `POST /count {"s":"hello"}` answers `{"v":5}` (the length in bytes, as go-kit's
//! `len`).
//!
//! `cargo run -p stringsvc` listens on :8080 (`stringsvc -listen 127.0.0.1:9000` elsewhere) and
//! drains on SIGINT or SIGTERM.

use kit_core::{Error, endpoint_fn};
use kit_server::Group;
use kit_transport_http::{Listener, Router, Server, json};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct StringRequest {
    // Absent is empty, as Go's decoder leaves it.
    #[serde(default)]
    s: String,
}

#[derive(Serialize)]
struct Reply<T> {
    v: T,
}

fn uppercase(s: &str) -> Result<String, Error> {
    if s.is_empty() {
        return Err(Error::invalid_argument("empty string"));
    }
    Ok(s.to_uppercase())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => "0.0.0.0:8080".to_owned(),
        [flag, addr] if flag.trim_start_matches('-') == "listen" => addr.clone(),
        _ => return Err("usage: stringsvc [-listen HOST:PORT]".into()),
    };
    let uppercase =
        endpoint_fn(|_cx, r: StringRequest| async move { uppercase(&r.s).map(|v| Reply { v }) });
    let count = endpoint_fn(|_cx, r: StringRequest| async move {
        Ok::<_, Error>(Reply {
            // Bytes, as go-kit's `len(s)`.
            v: r.s.len(),
        })
    });
    let router = Router::new()
        .post(
            "/uppercase",
            Server::new(uppercase, json::decode_request, json::encode_response),
        )
        .post(
            "/count",
            Server::new(count, json::decode_request, json::encode_response),
        );

    let listener = Listener::bind(listen.parse()?).await?;
    eprintln!("listening on {}", listener.local_addr());
    let mut group = Group::new();
    group.stop_on_signals()?;
    group.spawn("HTTP", listener.serve(router, group.stopping().wait()));
    Ok(group.run().await?)
}

//! kit-transport-http: kit-core endpoints served and called over HTTP/1.1 and HTTP/2 with
//! hyper 1, and over JSON-RPC 2.0.
//!
//! The shape is go-kit's `transport/http`: a [`Server`] turns one endpoint into an HTTP handler
//! (decode the request, call the endpoint, encode the response, with hooks before and after,
//! an error encoder, an error handler and a finalizer); a `Client` (feature `client`) is the
//! mirror image and is itself an endpoint. A [`Router`] maps method and path to servers; servers and routers are
//! `tower::Service`s, so they mount under hyper, axum or tonic too. A [`Listener`] serves any
//! such service over HTTP/1.1 and HTTP/2 (h2c) on one port, with safe limits and a graceful
//! drain. The [`json`] module holds the JSON codecs; `jsonrpc` (feature `jsonrpc`) the JSON-RPC
//! 2.0 server, and its client with `client`. Both features are on by default.
//!
//! ```
//! use kit_core::{endpoint_fn, Error};
//! use kit_transport_http::{json, Listener, Router, Server};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize)]
//! struct SumRequest { a: i64, b: i64 }
//! #[derive(Serialize)]
//! struct SumResponse { v: i64 }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
//! let sum = endpoint_fn(|_cx, r: SumRequest| async move {
//!     r.a.checked_add(r.b).map(|v| SumResponse { v }).ok_or_else(|| Error::business("integer overflow"))
//! });
//! let router = Router::new().post("/sum", Server::new(sum, json::decode_request, json::encode_response));
//! let listener = Listener::bind("127.0.0.1:0".parse().unwrap()).await?;
//! let addr = listener.local_addr();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(listener.serve(router, async { let _ = stopped.await; }));
//!
//! # #[cfg(feature = "client")] {
//! let client = kit_transport_http::Client::new(
//!     http::Method::POST,
//!     format!("http://{addr}/sum").parse().unwrap(),
//!     json::encode_request,
//!     json::decode_response::<serde_json::Value>,
//! );
//! use kit_core::Endpoint;
//! let v = client.call(kit_core::Context::new(), serde_json::json!({"a": 1, "b": 2})).await.unwrap();
//! assert_eq!(v, serde_json::json!({"v": 3}));
//! # }
//! stop.send(()).unwrap();
//! serving.await.unwrap()?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod automatic;
mod body;
mod calls;
#[cfg(feature = "client")]
mod client;
mod connection_service;
mod drain;
mod error;
mod head_deadline;
pub mod json;
#[cfg(feature = "jsonrpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "jsonrpc")))]
pub mod jsonrpc;
mod listener;
mod protocol;
mod request;
mod router;
mod server;
mod write_deadline;

pub use body::{Body, BoxError};
#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use client::{Client, ClientPool};
pub use error::{JSON_CONTENT_TYPE, encode_error, error_from_response};
pub use listener::Listener;
pub use request::{RemoteAddr, RequestInfo};
pub use router::{Router, RouterFuture};
/// The rustls version the [`Listener::tls`] configuration comes from (feature `tls`).
#[cfg(feature = "tls")]
pub use rustls;
pub use server::{Finished, Server, ServerOptions};

// The README's example is compiled with the doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

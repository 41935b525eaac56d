//! kit-transport-grpc: kit-core endpoints served and called over gRPC with tonic 0.14 and
//! prost, talking to any gRPC peer.
//!
//! go-kit's `transport/grpc` in Rust terms: a [`Server`] serves one method of a tonic-generated
//! service with a kit endpoint (decode the protobuf request, call the endpoint, encode the
//! reply, with metadata hooks); a [`Client`] calls one method over a tonic `Channel` and is
//! itself an endpoint. Errors travel as real gRPC status codes from the error's kind, where
//! go-kit answered everything with `UNKNOWN`; the call's deadline travels as `grpc-timeout`.
//!
//! A [`Listener`] serves tonic services with production defaults (message size limit answered
//! with `RESOURCE_EXHAUSTED`, stream and connection limits, a handshake timeout, TCP keep-alive, a
//! graceful drain with a deadline) and the standard [`Health`] service.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod client;
mod health;
mod incoming;
mod listener;
mod request;
mod routes;
mod server;
mod status;
mod timeout;
mod wire;

/// A conversion between protobuf messages and an endpoint's types (a decoder or an encoder).
type Convert<A, B> =
    std::sync::Arc<dyn Fn(&kit_core::Context, A) -> Result<B, kit_core::Error> + Send + Sync>;

pub use client::Client;
pub use health::{Health, HealthCalls, WatchUntilShutDown};
pub use listener::Listener;
pub use request::RequestInfo;
pub use routes::Routes;
pub use server::{Server, ServerOptions};
pub use status::{ERROR_KIND_KEY, error_from_status, status_from_error};
pub use wire::{Wire, WireLayer};

//! What a gRPC endpoint knows of its call, as HTTP endpoints know theirs: the peer's address
//! and the request metadata, in the call's context.

use std::net::SocketAddr;

use http::uri::PathAndQuery;
use tonic::metadata::MetadataMap;

/// The call a [`Server`](crate::Server) is serving: what its before hooks read, then in the
/// endpoint's context (`cx.get::<RequestInfo>()`) for the endpoint, the after hooks, error
/// handlers and finalizers. It moves into the context once the before hooks have read it:
/// nothing is copied.
#[derive(Debug)]
pub struct RequestInfo {
    remote_addr: Option<SocketAddr>,
    metadata: MetadataMap,
    path: Option<PathAndQuery>,
}

impl RequestInfo {
    pub(crate) fn new(
        remote_addr: Option<SocketAddr>,
        metadata: MetadataMap,
        path: Option<PathAndQuery>,
    ) -> Self {
        RequestInfo {
            remote_addr,
            metadata,
            path,
        }
    }

    /// The method called, as `package.Service/Method` (`pb.Add/Sum`): known when the call came
    /// through a [`Listener`](crate::Listener) (its wire layer records the call's path),
    /// `None` for a call handed to [`Server::serve`](crate::Server::serve) in-process.
    pub fn method(&self) -> Option<&str> {
        self.path.as_ref().map(|p| p.path().trim_start_matches('/'))
    }

    /// The peer's address: known when the call came through a [`Listener`](crate::Listener)
    /// or tonic's own TCP server, `None` for a call handed to [`Server::serve`](crate::Server::serve)
    /// in-process.
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// The request metadata (the HTTP/2 headers gRPC calls metadata, `grpc-timeout` among
    /// them).
    pub fn metadata(&self) -> &MetadataMap {
        &self.metadata
    }
}

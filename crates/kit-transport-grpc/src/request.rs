//! What a gRPC endpoint knows of its call, as HTTP endpoints know theirs: the peer's address
//! and the request metadata, in the call's context.

use std::net::SocketAddr;

use tonic::metadata::MetadataMap;

/// The call a [`Server`](crate::Server) is serving, in the endpoint's context
/// (`cx.get::<RequestInfo>()`), and the after hooks', error handlers' and finalizers'. The
/// metadata moves into the context once the before hooks have read it: nothing is copied.
#[derive(Debug)]
pub struct RequestInfo {
    remote_addr: Option<SocketAddr>,
    metadata: MetadataMap,
}

impl RequestInfo {
    pub(crate) fn new(remote_addr: Option<SocketAddr>, metadata: MetadataMap) -> Self {
        RequestInfo {
            remote_addr,
            metadata,
        }
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

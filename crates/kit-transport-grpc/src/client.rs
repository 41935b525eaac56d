//! The client side: an endpoint that calls one gRPC method over a tonic channel (go-kit's
//! `grpctransport.Client`).

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use http::uri::PathAndQuery;
use kit_core::{Context, Endpoint, Error};
use tonic::Request;
use tonic::client::Grpc;
use tonic::metadata::MetadataMap;
use tonic::transport::Channel;

use crate::Convert;
use crate::status::error_from_status;

type Before = Arc<dyn Fn(&Context, &mut MetadataMap) + Send + Sync>;
type After = Arc<dyn Fn(&Context, &MetadataMap) + Send + Sync>;

/// An endpoint that calls the gRPC method at `path` (`/package.Service/Method`) over a tonic
/// [`Channel`]: `encode` makes the protobuf request, `decode` reads the protobuf reply.
///
/// The call's deadline is sent as `grpc-timeout` and bounds the call locally too; cancelling
/// the context abandons it. A status other than OK becomes an error made by
/// [`error_from_status`](crate::error_from_status): the kit kind a kit server sent, or the kind
/// of the code, with the code kept. Before hooks add request metadata; after hooks read the
/// response metadata.
pub struct Client<PReq, PResp, Req, Resp> {
    channel: Channel,
    path: PathAndQuery,
    encode: Convert<Req, PReq>,
    decode: Convert<PResp, Resp>,
    before: Vec<Before>,
    after: Vec<After>,
    _messages: PhantomData<fn(PReq) -> PResp>,
}

impl<PReq, PResp, Req, Resp> Clone for Client<PReq, PResp, Req, Resp> {
    fn clone(&self) -> Self {
        Client {
            channel: self.channel.clone(),
            path: self.path.clone(),
            encode: Arc::clone(&self.encode),
            decode: Arc::clone(&self.decode),
            before: self.before.clone(),
            after: self.after.clone(),
            _messages: PhantomData,
        }
    }
}

impl<PReq, PResp, Req, Resp> fmt::Debug for Client<PReq, PResp, Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<PReq, PResp, Req, Resp> Client<PReq, PResp, Req, Resp>
where
    PReq: prost::Message + Send + Sync + 'static,
    PResp: prost::Message + Default + Send + Sync + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    /// A client of the method at `path` over `channel`. Fails if `path` is not a valid
    /// `/package.Service/Method` path.
    pub fn new(
        channel: Channel,
        path: &str,
        encode: impl Fn(&Context, Req) -> Result<PReq, Error> + Send + Sync + 'static,
        decode: impl Fn(&Context, PResp) -> Result<Resp, Error> + Send + Sync + 'static,
    ) -> Result<Self, Error> {
        let valid = path.starts_with('/') && path[1..].split('/').count() == 2;
        let path = PathAndQuery::try_from(path)
            .ok()
            .filter(|_| valid)
            .ok_or_else(|| {
                Error::invalid_argument(format!("{path:?} is not a /package.Service/Method path"))
            })?;
        Ok(Client {
            channel,
            path,
            encode: Arc::new(encode),
            decode: Arc::new(decode),
            before: Vec::new(),
            after: Vec::new(),
            _messages: PhantomData,
        })
    }

    /// Adds a hook that sets request metadata from the context (go-kit's `ClientBefore`).
    pub fn before(
        mut self,
        f: impl Fn(&Context, &mut MetadataMap) + Send + Sync + 'static,
    ) -> Self {
        self.before.push(Arc::new(f));
        self
    }

    /// Adds a hook that reads the response metadata (go-kit's `ClientAfter`).
    pub fn after(mut self, f: impl Fn(&Context, &MetadataMap) + Send + Sync + 'static) -> Self {
        self.after.push(Arc::new(f));
        self
    }

    async fn exchange(&self, cx: &Context, req: Req) -> Result<Resp, Error> {
        let mut request = Request::new((self.encode)(cx, req)?);
        if let Some(remaining) = cx.remaining() {
            request.set_timeout(remaining);
        }
        for before in &self.before {
            before(cx, request.metadata_mut());
        }
        let mut grpc = Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|err| Error::unavailable(format!("the gRPC channel is not ready: {err}")))?;
        let codec = tonic_prost::ProstCodec::<PReq, PResp>::default();
        let response = grpc
            .unary(request, self.path.clone(), codec)
            .await
            // Past the deadline tonic's own timeout answers CANCELLED; the caller's error is the
            // deadline's.
            .map_err(|status| cx.err().unwrap_or_else(|| error_from_status(&status)))?;
        for after in &self.after {
            after(cx, response.metadata());
        }
        (self.decode)(cx, response.into_inner())
    }
}

impl<PReq, PResp, Req, Resp> Endpoint<Req> for Client<PReq, PResp, Req, Resp>
where
    PReq: prost::Message + Send + Sync + 'static,
    PResp: prost::Message + Default + Send + Sync + 'static,
    Req: Send + 'static,
    Resp: Send + 'static,
{
    type Response = Resp;

    async fn call(&self, cx: Context, req: Req) -> Result<Resp, Error> {
        if let Some(err) = cx.err() {
            return Err(err);
        }
        tokio::select! {
            result = self.exchange(&cx, req) => result,
            err = cx.done() => Err(err),
        }
    }
}

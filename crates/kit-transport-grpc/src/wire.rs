//! What a kit gRPC server does at the HTTP/2 level, beneath tonic: it refuses oversized request
//! messages with `RESOURCE_EXHAUSTED`, answers request messages that do not decode with
//! `INVALID_ARGUMENT` (tonic says `INTERNAL`), and sends the trailers that after hooks set.
//!
//! tonic answers a message over its decoding limit with `OUT_OF_RANGE`; the gRPC spec's code
//! for "message larger than the server accepts" is `RESOURCE_EXHAUSTED`, which is what other
//! gRPC servers send and what clients retry on or not. The length prefix of each message is
//! read as the body streams past, so an oversized message is refused before it is buffered.

use std::cell::Cell;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tonic::metadata::MetadataMap;

/// The trailers an after hook set on a successful call; [`Server`](crate::Server) leaves them
/// in the response's extensions and the wire layer adds them to the final trailers frame.
#[derive(Clone, Debug)]
pub(crate) struct ResponseTrailers(pub(crate) MetadataMap);

/// The tower layer a [`Listener`](crate::Listener) puts in front of its services. Use it on a
/// tonic server of your own with `tonic::transport::Server::builder().layer(WireLayer::new(..))`
/// to get the same behaviour.
#[derive(Clone, Copy, Debug)]
pub struct WireLayer {
    max_message_bytes: usize,
}

impl WireLayer {
    /// Refuses request messages whose length prefix is over `max_message_bytes` with
    /// `RESOURCE_EXHAUSTED`. Keep it at or under the services' own decoding limit (tonic's
    /// default is 4 MiB), which otherwise answers first with `OUT_OF_RANGE`.
    pub fn new(max_message_bytes: usize) -> Self {
        WireLayer { max_message_bytes }
    }
}

impl<S> tower::Layer<S> for WireLayer {
    type Service = Wire<S>;

    fn layer(&self, inner: S) -> Wire<S> {
        Wire {
            inner,
            max_message_bytes: self.max_message_bytes,
        }
    }
}

tokio::task_local! {
    /// The `:path` of the call being served (`/pb.Add/Sum`), for the server's `RequestInfo`:
    /// tonic keeps a request's extensions but not its URI. [`Wire`] sets it while it polls the
    /// call's future, in which tonic runs the service; cheaper than an extension, which costs
    /// allocations for every call. The first server to serve takes it: a server called
    /// in-process from that call's endpoint is not told the outer call's path.
    pub(crate) static CALL_PATH: Cell<Option<http::uri::PathAndQuery>>;
}

/// The service [`WireLayer`] makes.
#[derive(Clone, Debug)]
pub struct Wire<S> {
    inner: S,
    max_message_bytes: usize,
}

impl<S> tower::Service<Request<Body>> for Wire<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Body>, S::Error>> + Send>,
    >;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let limit = self.max_message_bytes;
        // A `PathAndQuery` clone shares its bytes.
        let path = request.uri().path_and_query().cloned();
        let request = request.map(|body| {
            Body::new(LimitedMessages {
                inner: body,
                limit,
                framing: Framing::default(),
                refused: false,
            })
        });
        let response = CALL_PATH.scope(Cell::new(path), self.inner.call(request));
        Box::pin(async move {
            let mut response = response.await?;
            invalid_argument_for_malformed_protobuf(response.headers_mut());
            if let Some(ResponseTrailers(trailers)) =
                response.extensions_mut().remove::<ResponseTrailers>()
            {
                let trailers = trailers.into_headers();
                if !trailers.is_empty() {
                    response = response.map(|body| {
                        Body::new(WithTrailers {
                            inner: body,
                            trailers: Some(trailers),
                        })
                    });
                }
            }
            Ok(response)
        })
    }
}

/// tonic's prost codec answers a request message that does not decode with `INTERNAL`; it is
/// the client's fault, and counted as a server failure it would page whoever runs the service
/// and feed breakers. A trailers-only answer of that kind (how a unary or server-streaming call
/// fails to decode its request) becomes `INVALID_ARGUMENT`, its message kept.
fn invalid_argument_for_malformed_protobuf(headers: &mut HeaderMap) {
    // Names made once: a name given as text is parsed at every lookup, on every call.
    static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
    static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
    // grpc-message is percent-encoded: "failed to decode Protobuf message: ...".
    const DECODE_FAILED: &[u8] = b"failed%20to%20decode%20Protobuf%20message";
    let internal = headers.get(&GRPC_STATUS).map(|v| v.as_bytes()) == Some(b"13");
    if internal
        && headers
            .get(&GRPC_MESSAGE)
            .is_some_and(|m| m.as_bytes().starts_with(DECODE_FAILED))
    {
        headers.insert(&GRPC_STATUS, http::HeaderValue::from_static("3"));
    }
}

/// Where the request body stands in gRPC's length-prefixed framing: one flag byte and a
/// four-byte big-endian length before each message.
#[derive(Default)]
struct Framing {
    header: [u8; 5],
    header_len: usize,
    message_left: u64,
}

impl Framing {
    /// Follows `data` through the framing; `Err(len)` for a message longer than `limit`.
    fn feed(&mut self, mut data: &[u8], limit: usize) -> Result<(), u64> {
        while !data.is_empty() {
            if self.message_left > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.message_left).unwrap_or(usize::MAX));
                self.message_left -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = data.len().min(5 - self.header_len);
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len == 5 {
                self.header_len = 0;
                let [_, a, b, c, d] = self.header;
                let len = u64::from(u32::from_be_bytes([a, b, c, d]));
                if len > limit as u64 {
                    return Err(len);
                }
                self.message_left = len;
            }
        }
        Ok(())
    }
}

struct LimitedMessages {
    inner: Body,
    limit: usize,
    framing: Framing,
    // Once a message is refused the stream is over: the framing state is meaningless after it.
    refused: bool,
}

impl HttpBody for LimitedMessages {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        if this.refused {
            return Poll::Ready(None);
        }
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(frame)) = &frame
            && let Some(data) = frame.data_ref()
            && let Err(len) = this.framing.feed(data, this.limit)
        {
            this.refused = true;
            return Poll::Ready(Some(Err(Status::resource_exhausted(format!(
                "request message of {len} bytes is over the limit of {} bytes",
                this.limit
            )))));
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

struct WithTrailers {
    inner: Body,
    trailers: Option<HeaderMap>,
}

impl HttpBody for WithTrailers {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) if frame.is_trailers() => {
                let mut trailers = frame.into_trailers().unwrap_or_default();
                if let Some(ours) = this.trailers.take() {
                    // The status is tonic's: hooks may not write grpc-* names, nor replace a
                    // name tonic wrote; every value a hook appended under its own names goes.
                    let theirs: Vec<_> = trailers.keys().cloned().collect();
                    for (name, value) in &ours {
                        if !name.as_str().starts_with("grpc-") && !theirs.contains(name) {
                            trailers.append(name, value.clone());
                        }
                    }
                }
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            other => Poll::Ready(other),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::Framing;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7u8, len as usize));
        m
    }

    #[test]
    fn framing_follows_messages_split_anywhere() {
        let mut stream = message(3);
        stream.extend(message(10));
        stream.extend(message(0));
        stream.extend(message(11));
        // Every way of splitting the stream in two finds the 11-byte message over a limit of 10.
        for cut in 0..=stream.len() {
            let mut framing = Framing::default();
            let (a, b) = stream.split_at(cut);
            let result = framing.feed(a, 10).and_then(|()| framing.feed(b, 10));
            assert_eq!(result, Err(11), "cut at {cut}");
        }
        let mut framing = Framing::default();
        assert_eq!(framing.feed(&stream, 11), Ok(()));
        assert_eq!((framing.header_len, framing.message_left), (0, 0));
        // One byte at a time.
        let mut framing = Framing::default();
        assert!(stream.iter().all(|b| framing.feed(&[*b], 11).is_ok()));
    }
}

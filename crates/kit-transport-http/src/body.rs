//! The body types at the crate's edges, and reading a body whole under a size limit.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use bytes::BytesMut;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use kit_core::Error;

/// The body of every response a [`Server`](crate::Server) or [`Router`](crate::Router) writes:
/// the encoded bytes, whole.
pub type Body = Full<Bytes>;

/// The error type that hyper, tower and http-body share for "any error": kit-core's, the one
/// type every kit crate uses.
pub use kit_core::BoxError;

/// Any request body, as servers take it before going async: one type whatever body they are
/// given, which keeps their futures `Send` whatever the body's error type. hyper's own body,
/// what a [`Listener`](crate::Listener) serves, is kept as it is; any other is boxed (an
/// allocation and a free for every request: 150-250 instructions on addsvc's).
pub(crate) enum AnyBody {
    Incoming(Incoming),
    Boxed(UnsyncBoxBody<Bytes, BoxError>),
}

/// Makes a request's body an [`AnyBody`].
pub(crate) fn box_body<B>(request: http::Request<B>) -> http::Request<AnyBody>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    request.map(|body| {
        // Decided per type at compile time: the check is gone from the code.
        let mut body = Some(body);
        match (&mut body as &mut dyn Any).downcast_mut::<Option<Incoming>>() {
            Some(incoming) => AnyBody::Incoming(incoming.take().expect("just put there")),
            None => AnyBody::Boxed(body.expect("not taken").map_err(Into::into).boxed_unsync()),
        }
    })
}

impl HttpBody for AnyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            AnyBody::Incoming(body) => Pin::new(body).poll_frame(cx).map_err(Into::into),
            AnyBody::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            AnyBody::Incoming(body) => body.is_end_stream(),
            AnyBody::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            AnyBody::Incoming(body) => body.size_hint(),
            AnyBody::Boxed(body) => body.size_hint(),
        }
    }
}

/// Reads `body` whole, failing with 413 once it is over `limit` bytes (at once if its declared
/// length says so), with 408 if it has not all come within `timeout` (a client sending a byte
/// a minute would otherwise hold the request, its memory and the drain for ever), and with 400
/// if the peer broke off.
pub(crate) async fn read_limited(
    body: AnyBody,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Error> {
    let mut read = std::pin::pin!(read_within_limit(body, limit));
    // A body that is already here (the usual case) is read without arming a timer.
    let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
    if let Poll::Ready(result) = first {
        return result;
    }
    // The timer is on the heap: inline, it would size the future of every request, waiting
    // or not.
    let mut timer = Box::pin(tokio::time::sleep(timeout));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(result) = read.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        timer.as_mut().poll(cx).map(|()| {
            Err(Error::invalid_argument(format!(
                "the request body did not arrive within {timeout:?}"
            ))
            .with_http_status(408))
        })
    })
    .await
}

async fn read_within_limit(mut body: AnyBody, limit: usize) -> Result<Bytes, Error> {
    let too_large = || {
        Error::invalid_argument(format!(
            "request body is larger than the limit of {limit} bytes"
        ))
        .with_http_status(413)
    };
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let mut whole = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|err| {
            Error::invalid_argument(format!("could not read the request body: {err}"))
        })?;
        if let Ok(data) = frame.into_data() {
            if whole.len() + data.len() > limit {
                return Err(too_large());
            }
            if whole.is_empty() {
                // A body in one piece (the usual case) is passed on without a copy.
                match body.is_end_stream() {
                    true => return Ok(data),
                    false => whole.reserve(data.len()),
                }
            }
            whole.extend_from_slice(&data);
        }
    }
    Ok(whole.freeze())
}

//! The body types at the crate's edges, and reading a body whole under a size limit.

use bytes::Bytes;
use bytes::BytesMut;
use http_body::Body as HttpBody;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use kit_core::Error;
use std::future::Future;
use std::task::Poll;
use std::time::Duration;

/// The body of every response a [`Server`](crate::Server) or [`Router`](crate::Router) writes:
/// the encoded bytes, whole.
pub type Body = Full<Bytes>;

/// The error type that hyper, tower and http-body share for "any error": kit-core's, the one
/// type every kit crate uses.
pub use kit_core::BoxError;

/// Any request body, boxed: servers box the body they are given before going async, which
/// keeps their futures `Send` whatever the body's error type.
pub(crate) type AnyBody = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes a request's body.
pub(crate) fn box_body<B>(request: http::Request<B>) -> http::Request<AnyBody>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    request.map(|body| body.map_err(Into::into).boxed_unsync())
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

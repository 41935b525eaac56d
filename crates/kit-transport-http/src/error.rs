//! Errors on the wire: `{"error":"<message>"}` with the status from the error's hint, and the
//! reverse for clients.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use kit_core::{Error, ErrorKind};

/// The content type of JSON bodies, errors included.
pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The default error encoder (go-kit's `DefaultErrorEncoder`, in JSON): the status from
/// [`Error::http_status`], a body `{"error":"<message>"}`.
pub fn encode_error(err: &Error) -> Response<Bytes> {
    let status =
        StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({ "error": err.message() }).to_string();
    let mut response = Response::new(Bytes::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    response
}

/// The most of an error body a client keeps for the message.
const MAX_ERROR_MESSAGE: usize = 1024;

/// The error a client makes of a non-2xx response: the kind from the status
/// ([`ErrorKind::from_http_status`]), and a message that depends on whose fault it was.
///
/// - A 4xx is the remote's account of what was wrong with our request, and go-kit style APIs
///   put their business errors there (`400 {"error":"can't sum two zeroes"}`): the message is
///   the `{"error":"..."}` body's, or the body's text (at most 1 KiB).
/// - A 5xx is the remote's own failure, whose text may name its internals (hosts, queries,
///   stack traces): the message is fixed ("the upstream service failed: 503 Service
///   Unavailable"), and the remote's text is the error's source, for logs and traces
///   ([`Error::detail`]).
///
/// The remote's status is not kept as the error's HTTP status: a server that answers with this
/// error answers the status of its kind, not the status someone else chose.
pub fn error_from_response(status: StatusCode, body: &[u8]) -> Error {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let text = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => parsed.error,
        Err(_) if body.is_empty() => status.canonical_reason().unwrap_or("").to_owned(),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let mut end = text.len().min(MAX_ERROR_MESSAGE);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text[..end].trim().to_owned()
        }
    };
    let kind = ErrorKind::from_http_status(status.as_u16()).unwrap_or(ErrorKind::Unknown);
    if status.is_client_error() {
        return Error::new(kind, text);
    }
    Error::new(kind, format!("the upstream service failed: {status}"))
        .with_source(format!("{status}: {text}"))
}

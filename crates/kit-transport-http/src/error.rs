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
/// ([`ErrorKind::from_http_status`]), the status itself kept as the error's HTTP status, and
/// the message from a `{"error":"..."}` body, or the body's text (at most 1 KiB) if it is not
/// one.
pub fn error_from_response(status: StatusCode, body: &[u8]) -> Error {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let message = match serde_json::from_slice::<ErrorBody>(body) {
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
    Error::new(kind, message).with_http_status(status.as_u16())
}

//! JSON codecs for servers and clients: the functions go-kit users write by hand for every
//! service, once.
//!
//! Decoding failures are invalid-argument errors (400) carrying serde's message: malformed JSON,
//! a missing required field and a value of the wrong type each say which and where.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use kit_core::{Context, Error};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::JSON_CONTENT_TYPE;

/// A response that chooses its status code and adds headers (go-kit's `StatusCoder` and
/// `Headerer`); written by [`encode_response_with_meta`]. Both methods have defaults, so a type
/// implements only what it needs. A 204 response is written without a body.
pub trait ResponseMeta {
    /// The status of a successful response; 200 unless overridden.
    fn status_code(&self) -> StatusCode {
        StatusCode::OK
    }

    /// Headers to add to the response; none unless overridden.
    fn headers(&self, headers: &mut HeaderMap) {
        let _ = headers;
    }
}

/// Decodes a request body as JSON into `T` (a server's decoder).
pub fn decode_request<T: DeserializeOwned>(
    _: &Context,
    request: &Request<Bytes>,
) -> Result<T, Error> {
    from_slice(request.body())
}

/// Encodes `response` as a 200 JSON response (a server's encoder).
pub fn encode_response<T: Serialize>(_: &Context, response: T) -> Result<Response<Bytes>, Error> {
    json_response(StatusCode::OK, &response)
}

/// Encodes `response` as JSON with its own status and headers ([`ResponseMeta`]); a 204 is
/// written with no body.
pub fn encode_response_with_meta<T: Serialize + ResponseMeta>(
    _: &Context,
    response: T,
) -> Result<Response<Bytes>, Error> {
    let status = response.status_code();
    let mut encoded = if status == StatusCode::NO_CONTENT {
        let mut empty = Response::new(Bytes::new());
        *empty.status_mut() = status;
        empty
    } else {
        json_response(status, &response)?
    };
    response.headers(encoded.headers_mut());
    Ok(encoded)
}

/// Encodes `request` as the JSON body of the outgoing request (a client's encoder).
pub fn encode_request<T: Serialize>(
    _: &Context,
    request: T,
    outgoing: &mut Request<Bytes>,
) -> Result<(), Error> {
    *outgoing.body_mut() = to_bytes(&request)?;
    outgoing.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    Ok(())
}

/// Decodes a 2xx response body as JSON into `T` (a client's decoder). A body that does not
/// decode is an internal error: the server broke the contract.
pub fn decode_response<T: DeserializeOwned>(
    _: &Context,
    response: Response<Bytes>,
) -> Result<T, Error> {
    serde_json::from_slice(response.body()).map_err(|err| {
        Error::internal(format!("could not decode the response: {err}")).with_source(err)
    })
}

fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Result<Response<Bytes>, Error> {
    let mut response = Response::new(to_bytes(value)?);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(JSON_CONTENT_TYPE),
    );
    Ok(response)
}

fn to_bytes<T: Serialize>(value: &T) -> Result<Bytes, Error> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|err| Error::internal(format!("could not encode JSON: {err}")).with_source(err))
}

/// Parses JSON with serde's message on failure, as a 400.
pub(crate) fn from_slice<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|err| {
        let what = if err.is_data() {
            "invalid request"
        } else {
            "malformed JSON"
        };
        Error::invalid_argument(format!("{what}: {err}")).with_source(err)
    })
}

//! JSON-RPC 2.0 over HTTP (go-kit's `transport/http/jsonrpc`): a server that maps method names
//! to endpoints on one path, and a client endpoint per method.
//!
//! The server follows the [JSON-RPC 2.0 specification](https://www.jsonrpc.org/specification):
//! POST only, single and batch requests, notifications (no `id`, no response), and the
//! standard error codes. Errors from endpoints are reported, never dropped: their kind picks
//! the code ([`error_code`]) and travels in the error's `data` as `{"kind": "..."}`, so a kit
//! client gets the same kind back.

#[cfg(feature = "client")]
mod client;
mod server;

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use client::JsonRpcClient;
pub use server::JsonRpcServer;

use kit_core::{Error, ErrorKind};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// Invalid JSON was received.
pub const PARSE_ERROR: i64 = -32700;
/// The JSON sent is not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// The method does not exist.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// Invalid method parameters.
pub const INVALID_PARAMS: i64 = -32602;
/// Internal JSON-RPC error.
pub const INTERNAL_ERROR: i64 = -32603;
/// An error of the method itself: a business error, or any kind that is not one of the
/// standard codes (the implementation-defined server error range starts here).
pub const SERVER_ERROR: i64 = -32000;

/// The code an endpoint's error is reported with: invalid argument is `-32602`
/// ([`INVALID_PARAMS`]), unimplemented `-32601`, internal and unknown errors `-32603`, every
/// other kind (business errors first of all) `-32000`.
pub fn error_code(err: &Error) -> i64 {
    match err.kind() {
        ErrorKind::InvalidArgument => INVALID_PARAMS,
        ErrorKind::Unimplemented => METHOD_NOT_FOUND,
        ErrorKind::Internal | ErrorKind::Unknown => INTERNAL_ERROR,
        _ => SERVER_ERROR,
    }
}

/// Decodes a request's `params` (absent params are `null`) into `T`; a mismatch is an
/// invalid-params error with serde's message.
pub fn decode_params<T: DeserializeOwned>(
    _: &kit_core::Context,
    params: Value,
) -> Result<T, Error> {
    serde_json::from_value(params)
        .map_err(|err| Error::invalid_argument(format!("invalid params: {err}")).with_source(err))
}

/// Encodes an endpoint's response as the `result`.
pub fn encode_result<T: Serialize>(_: &kit_core::Context, response: T) -> Result<Value, Error> {
    serde_json::to_value(response).map_err(|err| {
        Error::internal(format!("could not encode the result: {err}")).with_source(err)
    })
}

/// Encodes a client's request as the `params`.
pub fn encode_params<T: Serialize>(_: &kit_core::Context, request: T) -> Result<Value, Error> {
    serde_json::to_value(request).map_err(|err| {
        Error::internal(format!("could not encode the params: {err}")).with_source(err)
    })
}

/// Decodes the `result` of a response into `T`; a mismatch is an internal error (the server
/// broke the contract).
pub fn decode_result<T: DeserializeOwned>(
    _: &kit_core::Context,
    result: Value,
) -> Result<T, Error> {
    serde_json::from_value(result).map_err(|err| {
        Error::internal(format!("could not decode the result: {err}")).with_source(err)
    })
}

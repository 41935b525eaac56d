//! The JSON-RPC 2.0 client: an endpoint per method.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Method, Uri};
use kit_core::{Context, Endpoint, Error, ErrorKind};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR};
use crate::client::{Client, ClientPool};
use crate::json;

type Encode<Req> = Arc<dyn Fn(&Context, Req) -> Result<Value, Error> + Send + Sync>;
type Decode<Resp> = Arc<dyn Fn(&Context, Value) -> Result<Resp, Error> + Send + Sync>;

/// An endpoint that calls one JSON-RPC 2.0 method: `encode` makes the `params`, `decode` reads
/// the `result`; ids count up from 1 per client (clones share the counter).
///
/// An error response becomes an error whose kind comes from the error's `data.kind` when a kit
/// server sent one, else from the code (invalid params or request and parse errors are invalid
/// argument, method not found is unimplemented, internal error is internal, anything else a
/// business error), with the server's message. A response whose id is not the request's is an
/// internal error.
pub struct JsonRpcClient<Req, Resp> {
    http: Client<Value, RpcResponse>,
    method: Arc<str>,
    next_id: Arc<AtomicU64>,
    encode: Encode<Req>,
    decode: Decode<Resp>,
}

#[derive(Deserialize)]
struct RpcResponse {
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<RpcError>,
    #[serde(default)]
    id: Value,
}

#[derive(Deserialize)]
struct RpcError {
    code: i64,
    message: String,
    #[serde(default)]
    data: Option<Value>,
}

impl<Req, Resp> Clone for JsonRpcClient<Req, Resp> {
    fn clone(&self) -> Self {
        JsonRpcClient {
            http: self.http.clone(),
            method: Arc::clone(&self.method),
            next_id: Arc::clone(&self.next_id),
            encode: Arc::clone(&self.encode),
            decode: Arc::clone(&self.decode),
        }
    }
}

impl<Req, Resp> fmt::Debug for JsonRpcClient<Req, Resp> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonRpcClient")
            .field("http", &self.http)
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> JsonRpcClient<Req, Resp> {
    /// A client calling `method` on the JSON-RPC server at `uri` (for serde types:
    /// [`encode_params`](super::encode_params), [`decode_result`](super::decode_result)).
    pub fn new(
        uri: Uri,
        method: &str,
        encode: impl Fn(&Context, Req) -> Result<Value, Error> + Send + Sync + 'static,
        decode: impl Fn(&Context, Value) -> Result<Resp, Error> + Send + Sync + 'static,
    ) -> Self {
        JsonRpcClient {
            http: Client::new(
                Method::POST,
                uri,
                json::encode_request,
                json::decode_response,
            ),
            method: method.into(),
            next_id: Arc::new(AtomicU64::new(1)),
            encode: Arc::new(encode),
            decode: Arc::new(decode),
        }
    }

    /// Sends through `pool`.
    pub fn pool(mut self, pool: ClientPool) -> Self {
        self.http = self.http.pool(pool);
        self
    }

    /// Adds a hook that adjusts each outgoing HTTP request after encoding, as
    /// [`Client::before`] does (go-kit's `ClientBefore`): headers such as trace context
    /// (kit-trace's `http::inject`).
    pub fn before(
        mut self,
        f: impl Fn(&Context, &mut http::Request<bytes::Bytes>) + Send + Sync + 'static,
    ) -> Self {
        self.http = self.http.before(f);
        self
    }

    /// Adds a hook that reads each HTTP response's head before decoding, as [`Client::after`]
    /// does (go-kit's `ClientAfter`).
    pub fn after(
        mut self,
        f: impl Fn(&Context, &http::response::Parts) + Send + Sync + 'static,
    ) -> Self {
        self.http = self.http.after(f);
        self
    }
}

fn error_kind(error: &RpcError) -> ErrorKind {
    let from_data = error
        .data
        .as_ref()
        .and_then(|d| d.get("kind"))
        .and_then(Value::as_str)
        .and_then(ErrorKind::from_name);
    from_data.unwrap_or(match error.code {
        INVALID_PARAMS | INVALID_REQUEST | PARSE_ERROR => ErrorKind::InvalidArgument,
        METHOD_NOT_FOUND => ErrorKind::Unimplemented,
        INTERNAL_ERROR => ErrorKind::Internal,
        _ => ErrorKind::Business,
    })
}

impl<Req: Send + 'static, Resp: Send + 'static> Endpoint<Req> for JsonRpcClient<Req, Resp> {
    type Response = Resp;

    async fn call(&self, cx: Context, req: Req) -> Result<Resp, Error> {
        let params = (self.encode)(&cx, req)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut request = json!({"jsonrpc": "2.0", "method": &*self.method, "id": id});
        // `null` is not allowed as params: a method without them gets none.
        if !params.is_null() {
            request["params"] = params;
        }
        let response = self.http.call(cx.clone(), request).await?;
        // An error may come with a null id: the specification's answer when the server could
        // not read the id, and what go-kit's server sends with every error.
        let null_id_error = response.id.is_null() && response.error.is_some();
        if response.id != json!(id) && !null_id_error {
            return Err(Error::internal(format!(
                "JSON-RPC response id {} does not match request id {id}",
                response.id
            )));
        }
        match (response.result, response.error) {
            (_, Some(error)) => Err(Error::new(error_kind(&error), error.message)),
            (Some(result), None) => (self.decode)(&cx, result),
            (None, None) => Err(Error::internal(
                "JSON-RPC response has neither result nor error",
            )),
        }
    }
}

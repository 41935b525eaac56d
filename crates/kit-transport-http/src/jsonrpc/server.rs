//! The JSON-RPC 2.0 server: one path, many methods.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header, request::Parts};
use http_body::Body as HttpBody;
use http_body_util::Full;
use kit_core::{Context, Endpoint, Error};
use serde_json::{Map, Value, json};

use super::{INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, error_code};
use crate::body::{AnyBody, Body, BoxError, box_body, read_limited};
use crate::error::{JSON_CONTENT_TYPE, encode_error};
use crate::request::RequestInfo;
use crate::server::{DEFAULT_BODY_LIMIT, DEFAULT_BODY_READ_TIMEOUT};

type BoxFuture<T> = kit_core::BoxFuture<'static, T>;
type Before = Arc<dyn Fn(Context, &Parts) -> Context + Send + Sync>;

/// One method with its types erased.
trait RpcMethod: Send + Sync {
    fn call(&self, cx: Context, params: Value) -> BoxFuture<Result<Value, Error>>;
}

struct Method_<E, Dec, Enc> {
    endpoint: E,
    decode: Dec,
    encode: Enc,
}

impl<E, Req, Dec, Enc> RpcMethod for Arc<Method_<E, Dec, Enc>>
where
    E: Endpoint<Req>,
    Req: Send + 'static,
    Dec: Fn(&Context, Value) -> Result<Req, Error> + Send + Sync + 'static,
    Enc: Fn(&Context, E::Response) -> Result<Value, Error> + Send + Sync + 'static,
{
    fn call(&self, cx: Context, params: Value) -> BoxFuture<Result<Value, Error>> {
        let method = Arc::clone(self);
        Box::pin(async move {
            let request = (method.decode)(&cx, params)?;
            let response = method.endpoint.call(cx.clone(), request).await?;
            (method.encode)(&cx, response)
        })
    }
}

/// A JSON-RPC 2.0 server: methods by name, on whatever path it is mounted at (it is a
/// `tower::Service`; put it in a [`Listener`](crate::Listener) or under a router).
///
/// Only POST is accepted (405 otherwise). A request body over 1 MiB gets 413. Every JSON-RPC
/// answer is HTTP 200 with a JSON body, except a request made only of notifications, which gets
/// 204 and no body, as the specification asks for nothing to be returned.
///
/// ```
/// use kit_core::{endpoint_fn, Error};
/// use kit_transport_http::jsonrpc::{decode_params, encode_result, JsonRpcServer};
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct Sum { a: i64, b: i64 }
///
/// let server = JsonRpcServer::new().method(
///     "sum",
///     endpoint_fn(|_cx, r: Sum| async move { Ok::<_, Error>(r.a + r.b) }),
///     decode_params,
///     encode_result,
/// );
/// ```
#[derive(Clone)]
pub struct JsonRpcServer {
    methods: Arc<HashMap<String, Arc<dyn RpcMethod>>>,
    before: Vec<Before>,
    batch_limit: usize,
    batch_concurrency: usize,
    body_limit: usize,
    body_read_timeout: Duration,
}

impl Default for JsonRpcServer {
    fn default() -> Self {
        JsonRpcServer::new()
    }
}

impl JsonRpcServer {
    /// A server with no methods; batches of at most 100 calls, run 8 at a time; request bodies
    /// of at most 1 MiB, read within 30 s (the HTTP server's defaults).
    ///
    /// Without a cap, 1 MiB of `[1,1,…]` is half a million error answers (a reply of tens of
    /// megabytes), and a batch of valid calls holds one request for as long as they take one
    /// after another.
    pub fn new() -> Self {
        JsonRpcServer {
            methods: Arc::default(),
            before: Vec::new(),
            batch_limit: 100,
            batch_concurrency: 8,
            body_limit: DEFAULT_BODY_LIMIT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
        }
    }

    /// The largest request body read, in bytes; a larger one gets 413. Default 1 MiB.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How long the whole request body may take to arrive; a slower one gets 408. Default 30 s.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.body_read_timeout = timeout;
        self
    }

    /// Answers a batch of more than `limit` calls with one Invalid Request error, running none
    /// of them (at least 1).
    pub fn batch_limit(mut self, limit: usize) -> Self {
        self.batch_limit = limit.max(1);
        self
    }

    /// Runs at most `n` calls of one batch at once (at least 1); answers keep the batch's order.
    pub fn batch_concurrency(mut self, n: usize) -> Self {
        self.batch_concurrency = n.max(1);
        self
    }

    /// Serves `endpoint` as method `name`: `decode` makes its request from the `params`
    /// (`null` when absent), `encode` makes the `result` from its response (for serde types:
    /// [`decode_params`](super::decode_params), [`encode_result`](super::encode_result)).
    pub fn method<E, Req, Dec, Enc>(
        mut self,
        name: &str,
        endpoint: E,
        decode: Dec,
        encode: Enc,
    ) -> Self
    where
        E: Endpoint<Req>,
        Req: Send + 'static,
        Dec: Fn(&Context, Value) -> Result<Req, Error> + Send + Sync + 'static,
        Enc: Fn(&Context, E::Response) -> Result<Value, Error> + Send + Sync + 'static,
    {
        let method: Arc<dyn RpcMethod> = Arc::new(Arc::new(Method_ {
            endpoint,
            decode,
            encode,
        }));
        Arc::make_mut(&mut self.methods).insert(name.to_owned(), method);
        self
    }

    /// Adds a hook that reads the HTTP request into the context before any call, as
    /// [`ServerOptions::before`](crate::ServerOptions::before).
    pub fn before(
        mut self,
        f: impl Fn(Context, &Parts) -> Context + Send + Sync + 'static,
    ) -> Self {
        self.before.push(Arc::new(f));
        self
    }

    /// Serves one HTTP request.
    pub fn handle<B>(
        &self,
        request: Request<B>,
    ) -> impl Future<Output = Response<Body>> + Send + use<B>
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let server = self.clone();
        let request = box_body(request);
        async move { server.handle_boxed(request).await }
    }

    async fn handle_boxed(&self, request: Request<AnyBody>) -> Response<Body> {
        let (parts, body) = request.into_parts();
        if parts.method != Method::POST {
            let err = Error::invalid_argument(format!(
                "method {} is not allowed: JSON-RPC requests are POSTed",
                parts.method
            ))
            .with_http_status(405);
            let mut response = encode_error(&err);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response.map(Full::new);
        }
        let mut cx = Context::new();
        for before in &self.before {
            cx = before(cx, &parts);
        }
        let cx = cx.with_value(RequestInfo::new(parts));
        let body = match read_limited(body, self.body_limit, self.body_read_timeout).await {
            Ok(body) => body,
            Err(err) => return encode_error(&err).map(Full::new),
        };
        let answer = match serde_json::from_slice::<Value>(&body) {
            Err(err) => Some(error_response(
                Value::Null,
                PARSE_ERROR,
                &format!("Parse error: {err}"),
                None,
            )),
            Ok(Value::Array(batch)) if batch.is_empty() => Some(error_response(
                Value::Null,
                INVALID_REQUEST,
                "Invalid Request: empty batch",
                None,
            )),
            Ok(Value::Array(batch)) if batch.len() > self.batch_limit => Some(error_response(
                Value::Null,
                INVALID_REQUEST,
                &format!(
                    "Invalid Request: a batch of {} calls is over the limit of {}",
                    batch.len(),
                    self.batch_limit
                ),
                None,
            )),
            Ok(Value::Array(batch)) => {
                let calls = batch.into_iter().map(|call| self.call_one(&cx, call));
                let answers: Vec<Value> = bounded(calls, self.batch_concurrency)
                    .await
                    .into_iter()
                    .flatten()
                    .collect();
                (!answers.is_empty()).then_some(Value::Array(answers))
            }
            Ok(call) => self.call_one(&cx, call).await,
        };
        let mut response = match answer {
            Some(answer) => {
                let mut response = Response::new(Bytes::from(answer.to_string()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(JSON_CONTENT_TYPE),
                );
                response
            }
            None => Response::new(Bytes::new()),
        };
        if response.body().is_empty() {
            *response.status_mut() = StatusCode::NO_CONTENT;
        }
        response.map(Full::new)
    }

    /// One request object: its response, or `None` for a notification.
    async fn call_one(&self, cx: &Context, call: Value) -> Option<Value> {
        let Value::Object(mut call) = call else {
            return Some(invalid_request(Value::Null, "not an object"));
        };
        // A valid request without an id is a notification: it gets no answer, not even an
        // error. An invalid one is answered, with the id if it could be read.
        let id = call.remove("id");
        let answer_id = match &id {
            None => Value::Null,
            Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => id.clone(),
            Some(_) => {
                return Some(invalid_request(
                    Value::Null,
                    "id must be a string, a number or null",
                ));
            }
        };
        // go-kit's JSON-RPC client (every release to date) sends `"jsonrpc": ""`, and go-kit's
        // server ignores the member: its deployed clients are accepted, nothing else is.
        if !matches!(
            call.get("jsonrpc").and_then(Value::as_str),
            Some("2.0" | "")
        ) {
            return Some(invalid_request(answer_id, "jsonrpc must be \"2.0\""));
        }
        let Some(Value::String(name)) = call.remove("method") else {
            return Some(invalid_request(answer_id, "method must be a string"));
        };
        let params = match call.remove("params") {
            None => Value::Null,
            Some(params @ (Value::Object(_) | Value::Array(_))) => params,
            Some(_) => {
                return id
                    .map(|_| invalid_request(answer_id, "params must be an object or an array"));
            }
        };
        let Some(method) = self.methods.get(&name) else {
            return id.map(|_| {
                error_response(
                    answer_id,
                    METHOD_NOT_FOUND,
                    &format!("Method not found: {name}"),
                    None,
                )
            });
        };
        let result = method.call(cx.clone(), params).await;
        let id = id?;
        Some(match result {
            Ok(result) => json!({"jsonrpc": "2.0", "result": result, "id": id}),
            Err(err) => error_response(
                id,
                error_code(&err),
                err.message(),
                Some(json!({"kind": err.kind().as_str()})),
            ),
        })
    }
}

/// Runs `futures` with at most `n` in flight, on this task; their outputs in their order.
async fn bounded<F: Future>(futures: impl Iterator<Item = F>, n: usize) -> Vec<F::Output> {
    let mut waiting = futures.enumerate();
    let mut running: Vec<(usize, Pin<Box<F>>)> = Vec::with_capacity(n);
    let mut done: Vec<Option<F::Output>> = Vec::new();
    std::future::poll_fn(|task| {
        loop {
            while running.len() < n {
                let Some((i, future)) = waiting.next() else {
                    break;
                };
                done.push(None);
                running.push((i, Box::pin(future)));
            }
            // Filling stops only when nothing waits: nothing running is everything done.
            if running.is_empty() {
                return Poll::Ready(());
            }
            let before = running.len();
            running.retain_mut(|(i, future)| match future.as_mut().poll(task) {
                Poll::Ready(output) => {
                    done[*i] = Some(output);
                    false
                }
                Poll::Pending => true,
            });
            // None finished: every running future will wake this task. Some did: start the
            // next ones before waiting.
            if running.len() == before {
                return Poll::Pending;
            }
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

fn invalid_request(id: Value, why: &str) -> Value {
    error_response(
        id,
        INVALID_REQUEST,
        &format!("Invalid Request: {why}"),
        None,
    )
}

fn error_response(id: Value, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = Map::new();
    error.insert("code".into(), code.into());
    error.insert("message".into(), message.into());
    if let Some(data) = data {
        error.insert("data".into(), data);
    }
    json!({"jsonrpc": "2.0", "error": error, "id": id})
}

impl fmt::Debug for JsonRpcServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut methods: Vec<&String> = self.methods.keys().collect();
        methods.sort();
        f.debug_struct("JsonRpcServer")
            .field("methods", &methods)
            .finish_non_exhaustive()
    }
}

impl<B> tower_service::Service<Request<B>> for JsonRpcServer
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let response = self.handle(request);
        Box::pin(async move { Ok(response.await) })
    }
}

//! The JSON-RPC 2.0 server: one path, many methods.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body as HttpBody;
use kit_core::{Context, Endpoint, Error};
use serde_json::{Map, Value, json};

use super::{INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, error_code};
use crate::body::{Body, BoxError, box_body};
use crate::error::JSON_CONTENT_TYPE;
use crate::server::{Server, ServerOptions};

type BoxFuture<T> = kit_core::BoxFuture<'static, T>;

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
/// Only POST is accepted (405 otherwise). Every JSON-RPC answer is HTTP 200 with a JSON body,
/// except a request made only of notifications, which gets 204 and no body, as the
/// specification asks for nothing to be returned.
///
/// Hooks and limits are the HTTP server's [`ServerOptions`], shared with the service's other
/// servers ([`options`](JsonRpcServer::options)): before hooks read the HTTP request into the
/// context before any call, after hooks set the response's headers, finalizers see the HTTP
/// status and length, error handlers see every error (each call's too), and the body limit
/// (413) and read timeout (408) apply. The error encoder answers what fails before JSON-RPC
/// starts (a method other than POST, the body); a call's error is a JSON-RPC error object
/// in the answer, its code from the error's kind ([`error_code`](super::error_code)). So
/// kit-trace's server tracing, given the same options, traces JSON-RPC requests as it does
/// HTTP ones.
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
    // The HTTP server does the exchange; its endpoint answers the JSON-RPC body. Shared, as the
    // router shares its servers: a request clones one reference count, not the server's four.
    server: Arc<Server<Dispatch, Parsed, Option<Value>>>,
}

/// A POSTed body as JSON, or why it is not (a parse error, answered in the body).
type Parsed = Result<Value, serde_json::Error>;

/// The endpoint under the HTTP server: a body's calls, answered.
#[derive(Clone)]
struct Dispatch {
    methods: HashMap<String, Arc<dyn RpcMethod>>,
    batch_limit: usize,
    batch_concurrency: usize,
    // For the error handlers, which see each call's error too.
    options: ServerOptions,
}

impl Default for JsonRpcServer {
    fn default() -> Self {
        JsonRpcServer::new()
    }
}

impl JsonRpcServer {
    /// A server with no methods; batches of at most 100 calls, run 8 at a time; the HTTP
    /// server's default options (request bodies of at most 1 MiB, read within 30 s).
    ///
    /// Without a cap, 1 MiB of `[1,1,…]` is half a million error answers (a reply of tens of
    /// megabytes), and a batch of valid calls holds one request for as long as they take one
    /// after another.
    pub fn new() -> Self {
        let dispatch = Dispatch {
            methods: HashMap::new(),
            batch_limit: 100,
            batch_concurrency: 8,
            options: ServerOptions::default(),
        };
        JsonRpcServer {
            server: Arc::new(Server::new(dispatch, decode_body, encode_answer)),
        }
    }

    fn dispatch(&mut self) -> &mut Dispatch {
        Arc::make_mut(&mut Arc::make_mut(&mut self.server).endpoint)
    }

    /// Uses `options` (hooks, error encoder, body limit and read timeout), as
    /// [`Server::options`] does.
    pub fn options(mut self, options: ServerOptions) -> Self {
        self.dispatch().options = options.clone();
        let server = Arc::make_mut(&mut self.server);
        *server = server.clone().options(options);
        self
    }

    /// Answers a batch of more than `limit` calls with one Invalid Request error, running none
    /// of them (at least 1).
    pub fn batch_limit(mut self, limit: usize) -> Self {
        self.dispatch().batch_limit = limit.max(1);
        self
    }

    /// Runs at most `n` calls of one batch at once (at least 1); answers keep the batch's order.
    pub fn batch_concurrency(mut self, n: usize) -> Self {
        self.dispatch().batch_concurrency = n.max(1);
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
        self.dispatch().methods.insert(name.to_owned(), method);
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
        let server = Arc::clone(&self.server);
        let request = box_body(request);
        async move {
            let mut response = Server::handle_boxed(server, request).await;
            if response.status() == StatusCode::METHOD_NOT_ALLOWED {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            response
        }
    }
}

fn decode_body(_cx: &Context, request: &Request<Bytes>) -> Result<Parsed, Error> {
    if request.method() != Method::POST {
        return Err(Error::invalid_argument(format!(
            "method {} is not allowed: JSON-RPC requests are POSTed",
            request.method()
        ))
        .with_http_status(405));
    }
    Ok(serde_json::from_slice(request.body()))
}

/// 200 with the answer; 204 and no body when there is none (notifications only).
fn encode_answer(_cx: &Context, answer: Option<Value>) -> Result<Response<Bytes>, Error> {
    Ok(match answer {
        Some(answer) => {
            let mut response = Response::new(Bytes::from(answer.to_string()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(JSON_CONTENT_TYPE),
            );
            response
        }
        None => {
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
    })
}

impl Endpoint<Parsed> for Dispatch {
    type Response = Option<Value>;

    async fn call(&self, cx: Context, body: Parsed) -> Result<Option<Value>, Error> {
        Ok(match body {
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
        })
    }
}

impl Dispatch {
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
        if let Err(err) = &result {
            for handler in &self.options.inner.error_handlers {
                handler(cx, err);
            }
        }
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
        let dispatch = &self.server.endpoint;
        let mut methods: Vec<&String> = dispatch.methods.keys().collect();
        methods.sort();
        f.debug_struct("JsonRpcServer")
            .field("methods", &methods)
            .field("batch_limit", &dispatch.batch_limit)
            .field("batch_concurrency", &dispatch.batch_concurrency)
            .field("options", &dispatch.options)
            .finish()
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

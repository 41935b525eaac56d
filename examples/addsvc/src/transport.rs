//! The wire formats of go-kit's addsvc, served and called: HTTP/JSON, gRPC and JSON-RPC 2.0.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, Uri};
use std::num::NonZeroU32;

use kit_client::balance::{Balanced, P2c};
use kit_client::breaker::Breaker;
use kit_client::limit::RateLimit;
use kit_client::retry::Retry;
use kit_core::{
    BoxEndpoint, Context, Endpoint, Error, ErrorKind, FixedEndpointer, Middleware, Named,
};
use kit_trace::{Propagation, ServerTracing, Tracing};
use kit_transport_http::jsonrpc::{JsonRpcClient, JsonRpcServer, decode_params, encode_result};
use kit_transport_http::{Router, Server, ServerOptions, json};
use opentelemetry_sdk::trace::SdkTracer;
use serde::Serialize;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Value, json};
use tonic::{Request as GrpcRequest, Response as GrpcResponse, Status};

use crate::pb;
use crate::service::{ConcatRequest, Reply, SumRequest};

// ---- Decoding go-kit's JSON ----

/// The members `a` and `b` of a request object, read as Go's `encoding/json` reads them into
/// go-kit addsvc's request structs: names matched ignoring case (go-kit's Go client sends
/// `{"A":1,"B":2}`), absent and `null` members zero, other members ignored, a repeated member's
/// last value kept. Decoded straight from the text (kit-transport-http's
/// `json::decode_request` and `jsonrpc::decode_params`), with no JSON tree built between.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Members<T> {
    /// Member `a`.
    pub a: T,
    /// Member `b`.
    pub b: T,
}

impl From<Members<i64>> for SumRequest {
    fn from(Members { a, b }: Members<i64>) -> Self {
        SumRequest { a, b }
    }
}

impl From<Members<String>> for ConcatRequest {
    fn from(Members { a, b }: Members<String>) -> Self {
        ConcatRequest { a, b }
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Members<T> {
    fn deserialize<D: Deserializer<'de>>(json: D) -> Result<Self, D::Error> {
        json.deserialize_map(MembersVisitor(std::marker::PhantomData))
    }
}

struct MembersVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for MembersVisitor<T> {
    type Value = Members<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object with members \"a\" and \"b\"")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut members = Members::default();
        while let Some(name) = map.next_key::<MemberName>()? {
            // Go leaves a field alone for `null`: zero, or what an earlier member set.
            let slot = match name {
                MemberName::A => &mut members.a,
                MemberName::B => &mut members.b,
                MemberName::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if let Some(value) = map.next_value::<Option<T>>()? {
                *slot = value;
            }
        }
        Ok(members)
    }
}

/// A member's name, matched as Go matches `a` and `b`: ignoring ASCII case, which is all of
/// Unicode's case folding for these two letters.
enum MemberName {
    A,
    B,
    Other,
}

impl<'de> Deserialize<'de> for MemberName {
    fn deserialize<D: Deserializer<'de>>(json: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = MemberName;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<MemberName, E> {
                Ok(match name.as_bytes() {
                    [b'a' | b'A'] => MemberName::A,
                    [b'b' | b'B'] => MemberName::B,
                    _ => MemberName::Other,
                })
            }
        }
        json.deserialize_identifier(NameVisitor)
    }
}

/// A reply's JSON, `{"v":..}`, written straight from the value.
#[derive(Serialize)]
struct V<T> {
    v: T,
}

// ---- HTTP ----

/// The error statuses: 400 for the three business errors (as go-kit's addsvc) and for
/// requests that do not decode (go-kit answers those 500, as it does anything it does not
/// know; a client's mistake is a 4xx here), the error's own 4xx for other faults of the
/// request (413, 429), 500 for anything else. The body is `{"error":"<message>"}`, as go-kit's.
pub fn http_status_of(err: &Error) -> StatusCode {
    if err.kind() == ErrorKind::Business {
        return StatusCode::BAD_REQUEST;
    }
    // Undecodable requests are invalid arguments: 400 is their status.
    StatusCode::from_u16(err.http_status())
        .ok()
        .filter(StatusCode::is_client_error)
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// The HTTP server options of addsvc's routes: go-kit's `{"error":..}` bodies with the
/// statuses of [`http_status_of`].
pub fn http_options() -> ServerOptions {
    ServerOptions::new().error_encoder(|_cx, err| {
        let mut response =
            Response::new(Bytes::from(json!({ "error": err.message() }).to_string()));
        *response.status_mut() = http_status_of(err);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json; charset=utf-8"),
        );
        response
    })
}

/// The options every HTTP-side server of addsvc shares, its routes and its JSON-RPC server:
/// [`http_options`], and with a tracer a SERVER span per request continuing the caller's trace.
pub fn server_options(tracer: Option<&SdkTracer>) -> ServerOptions {
    match tracer {
        Some(tracer) => ServerTracing::new(tracer.clone()).http_options(http_options()),
        None => http_options(),
    }
}

/// The HTTP router: `POST /sum` and `POST /concat`, answering `{"v":..}`.
pub fn http_router(
    sum: BoxEndpoint<SumRequest, Reply<i64>>,
    concat: BoxEndpoint<ConcatRequest, Reply<String>>,
    tracer: Option<&SdkTracer>,
) -> Router {
    let options = server_options(tracer);
    Router::new()
        .post(
            "/sum",
            Server::new(
                sum,
                |cx, r: &Request<Bytes>| {
                    json::decode_request::<Members<i64>>(cx, r).map(Into::into)
                },
                |cx, r: Reply<i64>| json::encode_response(cx, V { v: r.into_v()? }),
            )
            .options(options.clone()),
        )
        .post(
            "/concat",
            Server::new(
                concat,
                |cx, r: &Request<Bytes>| {
                    json::decode_request::<Members<String>>(cx, r).map(Into::into)
                },
                |cx, r: Reply<String>| json::encode_response(cx, V { v: r.into_v()? }),
            )
            .options(options),
        )
}

// ---- JSON-RPC ----

/// The JSON-RPC 2.0 server: methods `sum` and `concat`, params `{"a":..,"b":..}`, result
/// `{"v":..}`; business errors as JSON-RPC errors (code -32000, go-kit's message, the kind in
/// `data`). go-kit's own JSON-RPC transport answers them as a result `{"v":0}` and loses the
/// error; a JSON-RPC client expects an error object.
pub fn jsonrpc_server(
    sum: BoxEndpoint<SumRequest, Reply<i64>>,
    concat: BoxEndpoint<ConcatRequest, Reply<String>>,
    tracer: Option<&SdkTracer>,
) -> JsonRpcServer {
    JsonRpcServer::new()
        .options(server_options(tracer))
        .method(
            "sum",
            sum,
            |cx, params| decode_params::<Members<i64>>(cx, params).map(Into::into),
            |cx, r: Reply<i64>| encode_result(cx, V { v: r.into_v()? }),
        )
        .method(
            "concat",
            concat,
            |cx, params| decode_params::<Members<String>>(cx, params).map(Into::into),
            |cx, r: Reply<String>| encode_result(cx, V { v: r.into_v()? }),
        )
}

// ---- gRPC ----

type GrpcServer<Req, PReq, PReply, V> =
    kit_transport_grpc::Server<BoxEndpoint<Req, Reply<V>>, PReq, PReply, Req, Reply<V>>;

/// The business error's text, as the gRPC replies carry it (empty for none).
fn err_text(err: Option<Error>) -> String {
    err.map(|err| err.message().to_owned()).unwrap_or_default()
}

/// The `pb.Add` gRPC service.
pub struct AddService {
    sum: GrpcServer<SumRequest, pb::SumRequest, pb::SumReply, i64>,
    concat: GrpcServer<ConcatRequest, pb::ConcatRequest, pb::ConcatReply, String>,
}

impl AddService {
    /// Serves `sum` and `concat`.
    pub fn new(
        sum: BoxEndpoint<SumRequest, Reply<i64>>,
        concat: BoxEndpoint<ConcatRequest, Reply<String>>,
        tracer: Option<&SdkTracer>,
    ) -> pb::add_server::AddServer<AddService> {
        // With a tracer, every method's calls get a SERVER span continuing the caller's trace.
        let options = match tracer {
            Some(tracer) => ServerTracing::new(tracer.clone())
                .grpc_options(kit_transport_grpc::ServerOptions::new()),
            None => kit_transport_grpc::ServerOptions::new(),
        };
        let service = AddService {
            sum: kit_transport_grpc::Server::new(
                sum,
                |_cx, r: pb::SumRequest| Ok(SumRequest { a: r.a, b: r.b }),
                |_cx, r: Reply<i64>| {
                    Ok(pb::SumReply {
                        v: r.v,
                        err: err_text(r.err),
                    })
                },
            )
            .options(options.clone()),
            concat: kit_transport_grpc::Server::new(
                concat,
                |_cx, r: pb::ConcatRequest| Ok(ConcatRequest { a: r.a, b: r.b }),
                |_cx, r: Reply<String>| {
                    Ok(pb::ConcatReply {
                        v: r.v,
                        err: err_text(r.err),
                    })
                },
            )
            .options(options),
        };
        pb::add_server::AddServer::new(service)
    }
}

#[tonic::async_trait]
impl pb::add_server::Add for AddService {
    async fn sum(
        &self,
        request: GrpcRequest<pb::SumRequest>,
    ) -> Result<GrpcResponse<pb::SumReply>, Status> {
        self.sum.serve(request).await
    }

    async fn concat(
        &self,
        request: GrpcRequest<pb::ConcatRequest>,
    ) -> Result<GrpcResponse<pb::ConcatReply>, Status> {
        self.concat.serve(request).await
    }
}

// ---- Clients, for addcli ----

/// How a client calls a set of addsvc instances (go-kit addsvc's client middleware, with
/// balancing): retries that go to another instance, a circuit breaker per instance, and an
/// optional rate limit.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Attempts per call in all, the first included (kit-client's `Retry`, with its budget).
    pub attempts: u32,
    /// At most this many calls per second, refused beyond (none: no limit).
    pub rate_limit: Option<NonZeroU32>,
    /// A circuit breaker on each instance.
    pub breaker: bool,
    /// Traces each call: a CLIENT span per attempt, whose context goes out in B3 and W3C
    /// headers (HTTP and gRPC), under the caller's span (none: no spans).
    pub tracer: Option<SdkTracer>,
}

impl Default for ClientOptions {
    /// Three attempts, a breaker per instance, no rate limit, no tracing.
    fn default() -> Self {
        ClientOptions {
            attempts: 3,
            rate_limit: None,
            breaker: true,
            tracer: None,
        }
    }
}

impl ClientOptions {
    /// One instance's endpoint of the method `name`: a CLIENT span per call when tracing,
    /// behind the instance's own breaker.
    pub fn instance<Req, Resp, E>(&self, name: &'static str, endpoint: E) -> BoxEndpoint<Req, Resp>
    where
        E: Endpoint<Req, Response = Resp>,
        Req: Send + 'static,
        Resp: Send + 'static,
    {
        let endpoint = match &self.tracer {
            Some(tracer) => BoxEndpoint::new(Tracing::client(tracer.clone(), name).wrap(endpoint)),
            None => BoxEndpoint::new(endpoint),
        };
        match self.breaker {
            true => BoxEndpoint::new(Breaker::new().wrap(endpoint)),
            false => endpoint,
        }
    }

    /// The instances `endpoints` publishes (a fixed list, or kit-sd's discovered set) behind
    /// p2c, the rate limit and retries: one endpoint for the caller.
    pub fn balanced<Req, Resp>(
        &self,
        endpoints: impl kit_core::Endpointer<Req, Resp>,
    ) -> BoxEndpoint<Req, Resp>
    where
        Req: Clone + Send + 'static,
        Resp: Send + 'static,
    {
        let balanced = Balanced::new(P2c::new(endpoints));
        let limited = match self.rate_limit {
            Some(per_second) => BoxEndpoint::new(RateLimit::erroring(per_second).wrap(balanced)),
            None => BoxEndpoint::new(balanced),
        };
        BoxEndpoint::new(Retry::new().max_attempts(self.attempts).wrap(limited))
    }
}

/// A client of a set of addsvc instances (this one or go-kit's), over one transport, balanced
/// over them as [`ClientOptions`] say.
#[derive(Clone, Debug)]
pub struct AddClient {
    sum: BoxEndpoint<SumRequest, i64>,
    concat: BoxEndpoint<ConcatRequest, String>,
}

fn uri(addr: &str, path: &str) -> Result<Uri, Error> {
    format!("http://{addr}{path}")
        .parse()
        .map_err(|err| Error::invalid_argument(format!("bad address {addr:?}: {err}")))
}

/// The `v` of a `{"v":..}` result.
fn v_of<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    #[derive(serde::Deserialize)]
    struct V<T> {
        v: T,
    }
    serde_json::from_value::<V<T>>(value)
        .map(|r| r.v)
        .map_err(|err| Error::internal(format!("the server's reply has no proper v: {err}")))
}

fn reply_json(response: &Response<Bytes>) -> Result<Value, Error> {
    serde_json::from_slice(response.body())
        .map_err(|err| Error::internal(format!("the reply is not JSON: {err}")))
}

/// A 400 carrying one of the rules' messages is that business error (go-kit addsvc answers
/// only its business errors 400; this addsvc also answers undecodable requests 400, with other
/// messages): the kind a caller, its breaker and its retries then see.
fn business_of_400(err: Error) -> Error {
    use crate::service::errors::{INT_OVERFLOW, MAX_SIZE_EXCEEDED, TWO_ZEROES};
    let message = err.message();
    match err.http_status() == 400
        && [TWO_ZEROES, INT_OVERFLOW, MAX_SIZE_EXCEEDED].contains(&message)
    {
        true => Error::business(message.to_owned()),
        false => err,
    }
}

/// An HTTP client endpoint of addsvc's, its business errors read by [`business_of_400`].
fn http_client<Req: Send + 'static, Resp: Send + 'static>(
    client: kit_transport_http::Client<Req, Resp>,
) -> BoxEndpoint<Req, Resp> {
    BoxEndpoint::new(kit_core::endpoint_fn(move |cx, request| {
        let client = client.clone();
        async move { client.call(cx, request).await.map_err(business_of_400) }
    }))
}

/// The transport a client speaks to addsvc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// HTTP/JSON: `POST /sum`, `POST /concat`.
    Http,
    /// gRPC: `/pb.Add/Sum`, `/pb.Add/Concat`.
    Grpc,
    /// JSON-RPC 2.0: methods `sum` and `concat` on `/`.
    JsonRpc,
}

/// The Sum and Concat client endpoints of one addsvc instance.
#[derive(Clone, Debug)]
pub struct InstanceClients {
    /// Sum.
    pub sum: BoxEndpoint<SumRequest, i64>,
    /// Concat.
    pub concat: BoxEndpoint<ConcatRequest, String>,
}

/// The client endpoints of one addsvc instance at `addr` (`host:port`), over `transport`: what
/// a balancer's factory makes per discovered instance (addcli, apigateway). gRPC connections
/// are made lazily. Over HTTP and gRPC the call's current span (kit-trace's CLIENT span, when
/// the caller traces) goes out in B3 and W3C headers.
pub fn instance_clients(transport: Transport, addr: &str) -> Result<InstanceClients, Error> {
    let (sum, concat) = match transport {
        Transport::Http => {
            let encode = |v: Value, out: &mut Request<Bytes>| {
                *out.body_mut() = Bytes::from(v.to_string());
                out.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json; charset=utf-8"),
                );
                Ok(())
            };
            (
                http_client(
                    kit_transport_http::Client::new(
                        Method::POST,
                        uri(addr, "/sum")?,
                        move |_cx, r: SumRequest, out| encode(json!({"a": r.a, "b": r.b}), out),
                        |_cx, response| v_of(reply_json(&response)?),
                    )
                    .before(kit_trace::http::inject(Propagation::default())),
                ),
                http_client(
                    kit_transport_http::Client::new(
                        Method::POST,
                        uri(addr, "/concat")?,
                        move |_cx, r: ConcatRequest, out| encode(json!({"a": r.a, "b": r.b}), out),
                        |_cx, response| v_of(reply_json(&response)?),
                    )
                    .before(kit_trace::http::inject(Propagation::default())),
                ),
            )
        }
        Transport::JsonRpc => (
            BoxEndpoint::new(
                JsonRpcClient::new(
                    uri(addr, "/")?,
                    "sum",
                    |_cx, r: SumRequest| Ok(json!({"a": r.a, "b": r.b})),
                    |_cx, v| v_of(v),
                )
                .before(kit_trace::http::inject(Propagation::default())),
            ),
            BoxEndpoint::new(
                JsonRpcClient::new(
                    uri(addr, "/")?,
                    "concat",
                    |_cx, r: ConcatRequest| Ok(json!({"a": r.a, "b": r.b})),
                    |_cx, v| v_of(v),
                )
                .before(kit_trace::http::inject(Propagation::default())),
            ),
        ),
        Transport::Grpc => {
            let failed = |err: String| Error::business(err);
            let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
                .map_err(|err| Error::invalid_argument(format!("bad address {addr:?}: {err}")))?
                .connect_lazy();
            (
                BoxEndpoint::new(
                    kit_transport_grpc::Client::new(
                        channel.clone(),
                        "/pb.Add/Sum",
                        |_cx, r: SumRequest| Ok(pb::SumRequest { a: r.a, b: r.b }),
                        move |_cx, reply: pb::SumReply| match reply.err.is_empty() {
                            true => Ok(reply.v),
                            false => Err(failed(reply.err)),
                        },
                    )?
                    .before(kit_trace::grpc::inject(Propagation::default())),
                ),
                BoxEndpoint::new(
                    kit_transport_grpc::Client::new(
                        channel,
                        "/pb.Add/Concat",
                        |_cx, r: ConcatRequest| Ok(pb::ConcatRequest { a: r.a, b: r.b }),
                        move |_cx, reply: pb::ConcatReply| match reply.err.is_empty() {
                            true => Ok(reply.v),
                            false => Err(failed(reply.err)),
                        },
                    )?
                    .before(kit_trace::grpc::inject(Propagation::default())),
                ),
            )
        }
    };
    Ok(InstanceClients { sum, concat })
}

impl AddClient {
    /// A client of the addsvc instances at `addrs` (`host:port` each) over `transport`,
    /// balanced as `options` say.
    pub fn new(
        transport: Transport,
        addrs: &[&str],
        options: &ClientOptions,
    ) -> Result<AddClient, Error> {
        if addrs.is_empty() {
            return Err(Error::invalid_argument("no address to call"));
        }
        let (mut sums, mut concats) = (Vec::new(), Vec::new());
        for addr in addrs {
            let clients = instance_clients(transport, addr)?;
            sums.push(options.instance("sum", clients.sum));
            concats.push(options.instance("concat", clients.concat));
        }
        let sum = options.balanced(FixedEndpointer::new(sums));
        let concat = options.balanced(FixedEndpointer::new(concats));
        // Tracing: one span per call, over its attempts' CLIENT spans.
        let (sum, concat) = match &options.tracer {
            Some(tracer) => (
                BoxEndpoint::new(Named::new("sum").wrap(Tracing::new(tracer.clone()).wrap(sum))),
                BoxEndpoint::new(
                    Named::new("concat").wrap(Tracing::new(tracer.clone()).wrap(concat)),
                ),
            ),
            None => (sum, concat),
        };
        Ok(AddClient { sum, concat })
    }

    /// Sums `a` and `b` on the server.
    pub async fn sum(&self, cx: Context, a: i64, b: i64) -> Result<i64, Error> {
        self.sum.call(cx, SumRequest { a, b }).await
    }

    /// Concatenates `a` and `b` on the server.
    pub async fn concat(&self, cx: Context, a: String, b: String) -> Result<String, Error> {
        self.concat.call(cx, ConcatRequest { a, b }).await
    }
}

//! go-kit's addsvc in kit-rs, wire-compatible with go-kit's clients and servers: Sum and Concat
//! over HTTP/JSON, gRPC and JSON-RPC 2.0, every call logged, counted and timed, with a debug
//! port for `/metrics`, `/healthz` and `/readyz`, and a graceful drain on SIGINT or SIGTERM.
//!
//! `addsvc` (src/main.rs) serves it; `addcli` (src/bin/addcli.rs) calls any addsvc.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod flags;
pub mod pb;
pub mod service;
pub mod transport;

use std::net::SocketAddr;
use std::time::Duration;

use kit_client::breaker::Breaker;
use kit_client::limit::RateLimit;
use kit_core::BoxError;
use kit_log::Logger;
use kit_metrics::METHOD_OUTCOME_LABELS;
use kit_metrics::prometheus::{DEFAULT_BUCKETS, PrometheusCounter, PrometheusHistogram, Registry};
use kit_sd::Registrar;
use kit_sd::etcd::{EtcdOptions, EtcdRegistrar};
use kit_server::{DebugHandler, Group, ServerStack};
use kit_trace::EndpointTracing;
use opentelemetry::trace::TracerProvider;

/// What addsvc serves where, from its flags (go-kit's names and defaults).
#[derive(Clone, Debug)]
pub struct Config {
    /// `-debug.addr`: metrics and health. Default `:8080`.
    pub debug_addr: SocketAddr,
    /// `-http-addr`: HTTP/JSON. Default `:8081`.
    pub http_addr: SocketAddr,
    /// `-grpc-addr`: gRPC. Default `:8082`.
    pub grpc_addr: SocketAddr,
    /// `-jsonrpc-addr`: JSON-RPC 2.0. Default `:8084`.
    pub jsonrpc_addr: SocketAddr,
    /// `-zipkin-url`: the Zipkin collector's spans endpoint; none, no tracing.
    pub zipkin_url: Option<http::Uri>,
    /// `-log.format`: `logfmt` (default) or `json`.
    pub json_logs: bool,
    /// `-drain-timeout`: how long in-flight calls get after SIGTERM. Default `30s`.
    pub drain_timeout: Duration,
    /// `-readiness-delay`: how long after SIGTERM `/readyz` fails (and etcd deregisters)
    /// before the listeners stop accepting. Default `0s`.
    pub readiness_delay: Duration,
    /// `-timeout`: the most a call may take. Default `10s`.
    pub call_timeout: Duration,
    /// `-max-in-flight`: calls served at once per method, beyond which they are refused.
    /// Default 1024.
    pub max_in_flight: usize,
    /// `-instrument`: a log line and metrics for every call. Default `true`; `false` leaves
    /// both out (for the benchmark against raw servers).
    pub instrument: bool,
    /// `-rate-limit`: calls per second per method, refused beyond (HTTP 429); none by default.
    pub rate_limit: Option<std::num::NonZeroU32>,
    /// `-breaker`: a circuit breaker on each method (kit-client's defaults); off by default.
    pub breaker: bool,
    /// `-etcd-addr`: etcd endpoints (comma-separated) to register in; none, no registration.
    pub etcd: Vec<String>,
    /// `-etcd-prefix`: the service's key prefix. Default `/services/addsvc/`: each transport's
    /// address goes under `http/`, `grpc/` and `jsonrpc/` below it.
    pub etcd_prefix: String,
    /// `-etcd-ttl`: the registration's lease. Default `5s`.
    pub etcd_ttl: Duration,
    /// `-advertise-host`: the host registered with each listener's port. Default `127.0.0.1`.
    pub advertise_host: String,
}

impl Config {
    /// The flags addsvc takes, with their defaults and help.
    pub const FLAGS: &'static [flags::Flag] = &[
        flags::Flag::new("debug.addr", ":8080", "debug and metrics listen address"),
        flags::Flag::new("http-addr", ":8081", "HTTP listen address"),
        flags::Flag::new("grpc-addr", ":8082", "gRPC listen address"),
        flags::Flag::new("jsonrpc-addr", ":8084", "JSON-RPC listen address"),
        flags::Flag::new("log.format", "logfmt", "log format: logfmt or json"),
        flags::Flag::new(
            "zipkin-url",
            "",
            "Zipkin collector URL, e.g. http://localhost:9411/api/v2/spans (none: no tracing)",
        ),
        flags::Flag::new(
            "drain-timeout",
            "30s",
            "how long in-flight calls get on shutdown",
        ),
        flags::Flag::new(
            "readiness-delay",
            "0s",
            "how long /readyz fails after SIGTERM before the listeners stop accepting",
        ),
        flags::Flag::new("timeout", "10s", "the most time a call may take"),
        flags::Flag::new("max-in-flight", "1024", "calls served at once per method"),
        flags::Flag::new(
            "instrument",
            "true",
            "a log line and metrics for every call: true or false",
        ),
        flags::Flag::new(
            "rate-limit",
            "0",
            "calls per second per method, refused beyond (0: no limit)",
        ),
        flags::Flag::new(
            "breaker",
            "false",
            "a circuit breaker on each method: true or false",
        ),
        flags::Flag::new(
            "etcd-addr",
            "",
            "etcd endpoints to register in, comma-separated (none: no registration)",
        ),
        flags::Flag::new(
            "etcd-prefix",
            "/services/addsvc/",
            "the service's etcd key prefix",
        ),
        flags::Flag::new("etcd-ttl", "5s", "the etcd registration's lease"),
        flags::Flag::new(
            "advertise-host",
            "127.0.0.1",
            "the host registered with each listener's port",
        ),
    ];

    /// Reads the command line (without the program name).
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Config, String> {
        let parsed = flags::parse(Self::FLAGS, args)?;
        if let Some(extra) = parsed.positional.first() {
            return Err(format!("unexpected argument {extra:?}"));
        }
        let zipkin_url = match parsed.get("zipkin-url") {
            "" => None,
            url => Some(
                url.parse::<http::Uri>()
                    .ok()
                    .filter(|u| u.scheme_str() == Some("http") && u.host().is_some())
                    .ok_or_else(|| format!("-zipkin-url: {url:?} is not an http:// URL"))?,
            ),
        };
        Ok(Config {
            debug_addr: flags::addr(parsed.get("debug.addr"))?,
            http_addr: flags::addr(parsed.get("http-addr"))?,
            grpc_addr: flags::addr(parsed.get("grpc-addr"))?,
            jsonrpc_addr: flags::addr(parsed.get("jsonrpc-addr"))?,
            zipkin_url,
            json_logs: match parsed.get("log.format") {
                "logfmt" => false,
                "json" => true,
                other => return Err(format!("-log.format: {other:?} is not logfmt or json")),
            },
            drain_timeout: flags::duration(parsed.get("drain-timeout"))?,
            readiness_delay: flags::duration(parsed.get("readiness-delay"))?,
            call_timeout: flags::duration(parsed.get("timeout"))?,
            max_in_flight: parsed
                .get("max-in-flight")
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or("-max-in-flight: a positive integer")?,
            rate_limit: match parsed.get("rate-limit").parse::<u32>() {
                Ok(n) => std::num::NonZeroU32::new(n),
                Err(_) => return Err("-rate-limit: a number of calls per second".into()),
            },
            breaker: match parsed.get("breaker") {
                "true" => true,
                "false" => false,
                other => return Err(format!("-breaker: {other:?} is not true or false")),
            },
            instrument: match parsed.get("instrument") {
                "true" => true,
                "false" => false,
                other => return Err(format!("-instrument: {other:?} is not true or false")),
            },
            etcd: parsed
                .get("etcd-addr")
                .split(',')
                .map(str::trim)
                .filter(|a| !a.is_empty())
                .map(str::to_owned)
                .collect(),
            etcd_prefix: parsed.get("etcd-prefix").to_owned(),
            etcd_ttl: flags::duration(parsed.get("etcd-ttl"))?,
            advertise_host: match parsed.get("advertise-host") {
                "" => return Err("-advertise-host: a host name or address".into()),
                host => host.to_owned(),
            },
        })
    }
}

/// Serves addsvc until SIGINT or SIGTERM and a finished drain (`Ok`), or a failure.
pub async fn run(config: Config, logger: Logger) -> Result<(), BoxError> {
    // Metrics, with go-kit addsvc's names.
    let registry = Registry::new();
    let integers = PrometheusCounter::new(
        &registry,
        "example_addsvc_integers_summed",
        "Total count of integers summed via the Sum method.",
        &[],
    )?;
    let characters = PrometheusCounter::new(
        &registry,
        "example_addsvc_characters_concatenated",
        "Total count of characters concatenated via the Concat method.",
        &[],
    )?;
    let requests = PrometheusCounter::new(
        &registry,
        "example_addsvc_requests_total",
        "Requests served, by method and outcome.",
        &METHOD_OUTCOME_LABELS,
    )?;
    let durations = PrometheusHistogram::new(
        &registry,
        "example_addsvc_request_duration_seconds",
        "Request duration in seconds, by method and outcome.",
        &METHOD_OUTCOME_LABELS,
        DEFAULT_BUCKETS.to_vec(),
    )?;

    // Signals are handled before anything is bound or logged: a SIGTERM from then on drains.
    let drain = config.drain_timeout;
    let mut group = Group::new()
        .drain_deadline(drain + Duration::from_secs(1))
        .readiness_delay(config.readiness_delay);
    group.stop_on_signals()?;
    // Every port is bound before anything serves: a port in use fails the start.
    let http = kit_transport_http::Listener::bind(config.http_addr)
        .await?
        .drain_timeout(drain);
    let jsonrpc = kit_transport_http::Listener::bind(config.jsonrpc_addr)
        .await?
        .drain_timeout(drain);
    let debug = kit_transport_http::Listener::bind(config.debug_addr).await?;
    let health = group.health();
    let grpc = kit_transport_grpc::Listener::bind(config.grpc_addr)
        .await?
        .health(health.grpc())
        .drain_timeout(drain);
    // Zipkin tracing, when a collector is given; made once nothing can fail before `run`,
    // so that it is always shut down (flushed) below.
    let tracing = config
        .zipkin_url
        .clone()
        .map(|url| kit_trace::Tracing::zipkin("addsvc", url, 1.0));
    let tracer = tracing.as_ref().map(|t| t.provider().tracer("addsvc"));

    // The endpoints, each behind the standard stack: logged and counted unless told not to.
    let (sum, concat) = match config.instrument {
        true => (
            the_rest(
                "sum",
                ServerStack::new("sum")
                    .logging(logger.clone())
                    .metrics(requests.clone(), durations.clone())?,
                &config,
                tracer.as_ref(),
            )
            .wrap(service::sum_endpoint(integers)),
            the_rest(
                "concat",
                ServerStack::new("concat")
                    .logging(logger.clone())
                    .metrics(requests, durations)?,
                &config,
                tracer.as_ref(),
            )
            .wrap(service::concat_endpoint(characters)),
        ),
        false => (
            the_rest("sum", ServerStack::new("sum"), &config, tracer.as_ref())
                .wrap(service::sum_endpoint(integers)),
            the_rest(
                "concat",
                ServerStack::new("concat"),
                &config,
                tracer.as_ref(),
            )
            .wrap(service::concat_endpoint(characters)),
        ),
    };

    health.grpc().set_serving("pb.Add", true).await;
    for (transport, addr) in [
        ("debug/HTTP", debug.local_addr()),
        ("HTTP", http.local_addr()),
        ("gRPC", grpc.local_addr()),
        ("JSONRPC", jsonrpc.local_addr()),
    ] {
        kit_log::info!(logger, "transport", transport, "addr", addr);
    }

    let stopping = group.stopping();
    // Registered in etcd when asked, once everything is bound and serving is about to start;
    // deregistered as soon as the drain starts, so that callers stop coming before the
    // listeners stop accepting.
    if !config.etcd.is_empty() {
        let registrars: Vec<EtcdRegistrar> = [
            ("http", http.local_addr()),
            ("grpc", grpc.local_addr()),
            ("jsonrpc", jsonrpc.local_addr()),
        ]
        .into_iter()
        .map(|(transport, addr)| {
            let instance = format!("{}:{}", config.advertise_host, addr.port());
            EtcdRegistrar::new(
                config.etcd.clone(),
                format!("{}{transport}/{instance}", config.etcd_prefix),
                instance,
                config.etcd_ttl,
                EtcdOptions::new().logger(logger.clone()),
            )
        })
        .collect();
        for registrar in &registrars {
            registrar.register().await?;
        }
        kit_log::info!(
            logger,
            "msg",
            "registered in etcd",
            "prefix",
            config.etcd_prefix.as_str()
        );
        let (draining, logger) = (group.draining(), logger.clone());
        group.spawn("etcd", async move {
            draining.wait().await;
            for registrar in &registrars {
                if let Err(err) = registrar.deregister().await {
                    kit_log::warn!(logger, "msg", "deregistering", "err", format_args!("{err}"));
                }
            }
            Ok::<_, BoxError>(())
        });
    }
    group.spawn(
        "HTTP",
        http.serve(
            transport::http_router(sum.clone(), concat.clone(), tracer.as_ref()),
            stopping.wait(),
        ),
    );
    let rpc = transport::jsonrpc_server(sum.clone(), concat.clone(), tracer.is_some());
    let rpc = tower::service_fn(move |request| {
        let answer = rpc.handle(request);
        async move { Ok::<_, std::convert::Infallible>(answer.await) }
    });
    group.spawn("JSONRPC", jsonrpc.serve(rpc, stopping.wait()));
    let routes =
        tonic::service::Routes::new(transport::AddService::new(sum, concat, tracer.as_ref()));
    group.spawn("gRPC", grpc.serve(routes, stopping.wait()));
    // The debug port answers through the drain, so /readyz can be seen to say "not ready".
    let debug_handler = DebugHandler::new(health).metrics(registry);
    group.spawn_observer(
        "debug/HTTP",
        debug.serve(debug_handler, group.drained().wait()),
    );

    let result = group.run().await;
    if let Some(tracing) = tracing {
        // What is still buffered goes to the collector before the process ends.
        if let Err(err) = tracing.shutdown().await {
            kit_log::warn!(
                logger,
                "msg",
                "flushing spans",
                "err",
                format_args!("{err}")
            );
        }
    }
    match &result {
        Ok(()) => kit_log::info!(logger, "msg", "stopped"),
        Err(err) => kit_log::error!(logger, "msg", "stopped", "err", format_args!("{err}")),
    };
    result.map_err(Into::into)
}

/// The rest of an endpoint's stack, after its logging and metrics: tracing, go-kit addsvc's
/// rate limit and breaker (kit-client's, by flag), the timeout and the concurrency limit.
fn the_rest<Req, Resp, C, H>(
    name: &'static str,
    stack: ServerStack<Req, Resp, C, H>,
    config: &Config,
    tracer: Option<&opentelemetry_sdk::trace::SdkTracer>,
) -> ServerStack<Req, Resp, C, H>
where
    Req: Send + 'static,
    Resp: kit_core::Failer + Send + 'static,
    C: kit_metrics::Counter,
    H: kit_metrics::Histogram,
{
    let mut stack = stack;
    if let Some(tracer) = tracer {
        stack = stack.with(EndpointTracing::new(tracer.clone(), name));
    }
    if let Some(per_second) = config.rate_limit {
        stack = stack.with(RateLimit::erroring(per_second));
    }
    if config.breaker {
        stack = stack.with(Breaker::new());
    }
    stack
        .timeout(config.call_timeout)
        .concurrency_limit(config.max_in_flight)
}

/// The logger addsvc writes to stderr: logfmt, or JSON, with a UTC timestamp and the caller.
/// Records are written on a background thread through a queue of 4096 (kit-log's non-blocking
/// writer): a stalled stderr drops and counts records instead of stalling every call. Keep the
/// guard until the end of `main`; dropping it writes what is queued.
pub fn logger(json: bool) -> (Logger, kit_log::NonBlockingGuard) {
    use kit_log::{Json, Logfmt, caller, kv, timestamp_utc};
    use slog::Drain;
    const QUEUE: usize = 4096;
    let (logger, guard) = if json {
        let (encoder, guard) = Json::non_blocking(std::io::stderr(), QUEUE);
        (Logger::new(encoder.ignore_res()), guard)
    } else {
        let (encoder, guard) = Logfmt::non_blocking(std::io::stderr(), QUEUE);
        (Logger::new(encoder.ignore_res()), guard)
    };
    (
        logger.with(kv!("ts", timestamp_utc(), "caller", caller())),
        guard,
    )
}

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
use kit_core::concurrency::ConcurrencyLimit;
use kit_core::deadline::Deadline;
use kit_core::{BoxError, Identity, Stack};
use kit_log::Logger;
use kit_metrics::METHOD_OUTCOME_LABELS;
use kit_metrics::prometheus::{DEFAULT_BUCKETS, PrometheusCounter, PrometheusHistogram, Registry};
use kit_sd::Registrar;
use kit_sd::etcd::{EtcdOptions, EtcdRegistrar};
use kit_server::{DebugHandler, Group, ServerStack};
use kit_trace::Tracing;
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

/// addsvc's command line: go-kit addsvc's flag names and defaults (`-name` or `--name`).
#[derive(clap::Parser, Debug)]
#[command(
    name = "addsvc",
    version,
    about = "go-kit's addsvc in kit-rs: Sum and Concat over HTTP/JSON, gRPC and JSON-RPC 2.0"
)]
struct Flags {
    /// Debug and metrics listen address
    #[arg(long = "debug.addr", default_value = ":8080", value_parser = flags::addr)]
    debug_addr: SocketAddr,
    /// HTTP listen address
    #[arg(long, default_value = ":8081", value_parser = flags::addr)]
    http_addr: SocketAddr,
    /// gRPC listen address
    #[arg(long, default_value = ":8082", value_parser = flags::addr)]
    grpc_addr: SocketAddr,
    /// JSON-RPC listen address
    #[arg(long, default_value = ":8084", value_parser = flags::addr)]
    jsonrpc_addr: SocketAddr,
    /// Log format: logfmt or json
    #[arg(long = "log.format", value_name = "logfmt|json", default_value = "logfmt", value_parser = flags::json_logs, action = clap::ArgAction::Set)]
    json_logs: bool,
    /// Zipkin collector URL, e.g. http://localhost:9411/api/v2/spans (none: no tracing)
    #[arg(long, default_value = "", hide_default_value = true, value_parser = flags::maybe_http_url)]
    zipkin_url: flags::MaybeUrl,
    /// How long in-flight calls get on shutdown
    #[arg(long, default_value = "30s", value_parser = flags::duration)]
    drain_timeout: Duration,
    /// How long /readyz fails after SIGTERM before the listeners stop accepting
    #[arg(long, default_value = "0s", value_parser = flags::duration)]
    readiness_delay: Duration,
    /// The most time a call may take
    #[arg(long, default_value = "10s", value_parser = flags::duration)]
    timeout: Duration,
    /// Calls served at once per method
    #[arg(long, default_value = "1024", value_parser = flags::positive)]
    max_in_flight: u32,
    /// A log line and metrics for every call: true or false
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    instrument: bool,
    /// Calls per second per method, refused beyond (0: no limit)
    #[arg(long, default_value_t = 0)]
    rate_limit: u32,
    /// A circuit breaker on each method: true or false
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set)]
    breaker: bool,
    /// etcd endpoints to register in, comma-separated (none: no registration)
    #[arg(long, default_value = "")]
    etcd_addr: String,
    /// The service's etcd key prefix
    #[arg(long, default_value = "/services/addsvc/")]
    etcd_prefix: String,
    /// The etcd registration's lease
    #[arg(long, default_value = "5s", value_parser = flags::duration)]
    etcd_ttl: Duration,
    /// The host registered with each listener's port
    #[arg(long, default_value = "127.0.0.1", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    advertise_host: String,
}

impl Config {
    /// Reads the command line (with the program name), in Go's spelling or clap's; on a bad
    /// one, and for `-h`, prints what clap prints and exits (2, or 0 for help).
    pub fn from_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Config {
        let f: Flags = flags::parse(args);
        Config {
            debug_addr: f.debug_addr,
            http_addr: f.http_addr,
            grpc_addr: f.grpc_addr,
            jsonrpc_addr: f.jsonrpc_addr,
            zipkin_url: f.zipkin_url.0,
            json_logs: f.json_logs,
            drain_timeout: f.drain_timeout,
            readiness_delay: f.readiness_delay,
            call_timeout: f.timeout,
            max_in_flight: f.max_in_flight as usize,
            instrument: f.instrument,
            rate_limit: std::num::NonZeroU32::new(f.rate_limit),
            breaker: f.breaker,
            etcd: flags::list(&f.etcd_addr),
            etcd_prefix: f.etcd_prefix,
            etcd_ttl: f.etcd_ttl,
            advertise_host: f.advertise_host,
        }
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
    // The group's drain deadline follows from the listeners' drain timeouts.
    let mut group = Group::new().readiness_delay(config.readiness_delay);
    group.stop_on_signals()?;
    // Every port is bound before anything serves: a port in use fails the start.
    let http = kit_transport_http::Listener::bind(config.http_addr)
        .await?
        .drain_timeout(drain);
    let jsonrpc = kit_transport_http::Listener::bind(config.jsonrpc_addr)
        .await?
        .drain_timeout(drain);
    let debug = kit_transport_http::Listener::bind(config.debug_addr)
        .await?
        .drain_timeout(drain);
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
        .map(|url| kit_trace::ZipkinTracing::new("addsvc", url, 1.0));
    let tracer = tracing.as_ref().map(|t| t.provider().tracer("addsvc"));

    // The endpoints, each behind the standard stack: logged and counted unless told not to.
    let (sum, concat) = (
        service::sum_endpoint(integers),
        service::concat_endpoint(characters),
    );
    let (sum, concat) = match config.instrument {
        true => (
            protected(
                ServerStack::new("sum")
                    .logging(logger.clone())
                    .metrics(requests.clone(), durations.clone())?,
                &config,
                tracer.as_ref(),
            )
            .wrap(sum),
            protected(
                ServerStack::new("concat")
                    .logging(logger.clone())
                    .metrics(requests, durations)?,
                &config,
                tracer.as_ref(),
            )
            .wrap(concat),
        ),
        false => (
            protected(ServerStack::new("sum"), &config, tracer.as_ref()).wrap(sum),
            protected(ServerStack::new("concat"), &config, tracer.as_ref()).wrap(concat),
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
    group.serve_http(
        "HTTP",
        http,
        transport::http_router(sum.clone(), concat.clone(), tracer.as_ref()),
    );
    group.serve_http(
        "JSONRPC",
        jsonrpc,
        transport::jsonrpc_server(sum.clone(), concat.clone(), tracer.as_ref()),
    );
    let routes =
        kit_transport_grpc::Routes::new(transport::AddService::new(sum, concat, tracer.as_ref()));
    group.serve_grpc("gRPC", grpc, routes);
    // The debug port answers through the drain, so /readyz can be seen to say "not ready".
    group.serve_http_observer(
        "debug/HTTP",
        debug,
        DebugHandler::new(health).metrics(registry),
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

/// What [`protected`] adds between metrics and the timeout, each only when its flag asks.
type Protections =
    Stack<Option<Breaker>, Stack<Option<RateLimit>, Stack<Option<Tracing>, Identity>>>;

/// `stack` completed as addsvc's flags ask: tracing, the rate limit and the breaker where asked
/// for, the call timeout and the concurrency limit.
fn protected<L, M>(
    stack: ServerStack<L, M>,
    config: &Config,
    tracer: Option<&opentelemetry_sdk::trace::SdkTracer>,
) -> ServerStack<L, M, Protections, Deadline, ConcurrencyLimit> {
    stack
        .with(tracer.map(|tracer| Tracing::new(tracer.clone())))
        .with(config.rate_limit.map(RateLimit::erroring))
        .with(config.breaker.then(Breaker::new))
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

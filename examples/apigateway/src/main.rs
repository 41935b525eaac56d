//! apigateway: go-kit's apigateway example in kit-rs. One HTTP front door for the services
//! behind it:
//!
//! - `POST /addsvc/sum`, `POST /addsvc/concat` (addsvc's JSON), called on the addsvc instances
//!   over HTTP or, with `-addsvc-transport grpc`, over gRPC;
//! - `POST /stringsvc/uppercase`, `POST /stringsvc/count`, passed to the stringsvc instances.
//!
//! Instances come from a static list (`-addsvc`, `-stringsvc`; by default one addsvc on
//! localhost:8081, so `cargo run -p apigateway` works beside `cargo run -p addsvc`) or from a
//! registry: `-etcd-addr` (where addsvc and stringsvc register themselves, under
//! `/services/addsvc/<transport>/` and `/services/stringsvc/http/`), `-zk-addr` (the children
//! of `/services/<service>/<transport>`), `-consul-addr` (the passing instances of the Consul
//! services `addsvc`, `addsvc-grpc` and `stringsvc`), or `-dns-addr` (SRV records
//! `_addsvc._tcp.<-dns-domain>`, `_addsvc-grpc._tcp...`, `_stringsvc._tcp...`). Each call goes through
//! kit-client: retries within a budget over p2c over one breaker per instance. The debug port
//! has `/metrics` (with `apigateway_instances{service}`), `/healthz` and `/readyz`; every call is
//! logged and counted; `-zipkin-url` traces each call from the gateway's SERVER span through
//! its CLIENT spans into the instance's spans, in one trace.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use addsvc::flags;
use addsvc::transport::{ClientOptions, Members, Transport, http_options, instance_clients};
use bytes::Bytes;
use http::{Method, Request};
use kit_client::balance::{Balanced, P2c};
use kit_client::retry::Retry;
use kit_core::{BoxEndpoint, BoxError, Error, Middleware};
use kit_log::Logger;
use kit_metrics::prometheus::{
    DEFAULT_BUCKETS, PrometheusCounter, PrometheusGauge, PrometheusHistogram, Registry,
};
use kit_metrics::{Gauge, METHOD_OUTCOME_LABELS};
use kit_sd::consul::{ConsulInstancer, ConsulOptions};
use kit_sd::dns::{SrvInstancer, SrvOptions};
use kit_sd::etcd::{EtcdInstancer, EtcdOptions};
use kit_sd::zookeeper::{ZkInstancer, ZkOptions};
use kit_sd::{Endpointer, EndpointerOptions, Fixed, Instancer};
use kit_server::{DebugHandler, Group, ServerStack};
use kit_trace::{Propagation, ServerTracing, Tracing};
use kit_transport_http::{Router, Server, json};
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::trace::SdkTracer;
use serde_json::{Value, json};

/// apigateway's command line: go-kit's flag names (`-name` or `--name`).
#[derive(clap::Parser, Debug)]
#[command(
    name = "apigateway",
    version,
    about = "go-kit's apigateway in kit-rs: one HTTP front door for addsvc and stringsvc"
)]
struct Flags {
    /// HTTP listen address
    #[arg(long, default_value = ":8000", value_parser = flags::addr)]
    http_addr: SocketAddr,
    /// Debug and metrics listen address
    #[arg(long = "debug.addr", default_value = ":8090", value_parser = flags::addr)]
    debug_addr: SocketAddr,
    /// addsvc instances (comma-separated) when not discovered
    #[arg(long, default_value = "localhost:8081")]
    addsvc: String,
    /// How addsvc is called
    #[arg(long, value_enum, default_value_t = AddsvcTransport::Http)]
    addsvc_transport: AddsvcTransport,
    /// stringsvc instances (comma-separated) when not discovered
    #[arg(long, default_value = "")]
    stringsvc: String,
    /// etcd endpoints (comma-separated): discover the instances there instead
    #[arg(long, default_value = "")]
    etcd_addr: String,
    /// ZooKeeper servers (comma-separated): discover the instances there instead
    #[arg(long, default_value = "")]
    zk_addr: String,
    /// Consul agent (host:port): discover the instances there instead (services addsvc, addsvc-grpc, stringsvc)
    #[arg(long)]
    consul_addr: Option<String>,
    /// DNS servers (comma-separated IP:port): discover the instances by SRV records instead
    #[arg(long, default_value = "")]
    dns_addr: String,
    /// The domain of the SRV names (_addsvc._tcp.DOMAIN)
    #[arg(long, default_value = "service.consul")]
    dns_domain: String,
    /// Log format: logfmt or json
    #[arg(long = "log.format", value_name = "logfmt|json", default_value = "logfmt", value_parser = flags::json_logs, action = clap::ArgAction::Set)]
    json_logs: bool,
    /// Zipkin collector URL (none: no tracing)
    #[arg(long, default_value = "", hide_default_value = true, value_parser = flags::maybe_http_url)]
    zipkin_url: flags::MaybeUrl,
    /// The most time a call may take, retries included
    #[arg(long, default_value = "10s", value_parser = flags::duration)]
    timeout: Duration,
    /// Attempts per call; a retry goes to another instance
    #[arg(long, default_value = "3", value_parser = flags::positive)]
    attempts: u32,
    /// How long in-flight calls get on shutdown
    #[arg(long, default_value = "10s", value_parser = flags::duration)]
    drain_timeout: Duration,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum AddsvcTransport {
    Http,
    Grpc,
}

struct Config {
    http_addr: SocketAddr,
    debug_addr: SocketAddr,
    addsvc: Vec<String>,
    transport: Transport,
    stringsvc: Vec<String>,
    etcd: Vec<String>,
    zookeeper: Vec<String>,
    consul: Option<String>,
    dns: Vec<SocketAddr>,
    dns_domain: String,
    json_logs: bool,
    zipkin_url: Option<http::Uri>,
    timeout: Duration,
    attempts: u32,
    drain_timeout: Duration,
}

impl Config {
    /// Reads the command line (with the program name); on a bad one, prints what clap prints
    /// and exits.
    fn from_args(args: impl IntoIterator<Item = std::ffi::OsString>) -> Config {
        let f: Flags = flags::parse(args);
        let dns = flags::list(&f.dns_addr)
            .iter()
            .map(|a| a.parse())
            .collect::<Result<_, _>>()
            .unwrap_or_else(|_| {
                <Flags as clap::CommandFactory>::command()
                    .error(
                        clap::error::ErrorKind::ValueValidation,
                        format!("--dns-addr: {:?} is not a list of IP:port", f.dns_addr),
                    )
                    .exit()
            });
        Config {
            http_addr: f.http_addr,
            debug_addr: f.debug_addr,
            addsvc: flags::list(&f.addsvc),
            transport: match f.addsvc_transport {
                AddsvcTransport::Http => Transport::Http,
                AddsvcTransport::Grpc => Transport::Grpc,
            },
            stringsvc: flags::list(&f.stringsvc),
            etcd: flags::list(&f.etcd_addr),
            zookeeper: flags::list(&f.zk_addr),
            consul: f
                .consul_addr
                .map(|a| a.trim().to_owned())
                .filter(|a| !a.is_empty()),
            dns,
            dns_domain: f.dns_domain.trim_matches('.').to_owned(),
            json_logs: f.json_logs,
            zipkin_url: f.zipkin_url.0,
            timeout: f.timeout,
            attempts: f.attempts,
            drain_timeout: f.drain_timeout,
        }
    }

    /// The instances of `service` over `transport`: from the registry a flag names, else the
    /// static `list`.
    fn instancer(
        &self,
        service: &str,
        transport: &str,
        list: &[String],
        logger: &Logger,
    ) -> Result<Box<dyn Instancer>, BoxError> {
        if !self.etcd.is_empty() {
            return Ok(Box::new(EtcdInstancer::new(
                self.etcd.clone(),
                format!("/services/{service}/{transport}/"),
                EtcdOptions::new().logger(logger.clone()),
            )));
        }
        if !self.zookeeper.is_empty() {
            return Ok(Box::new(ZkInstancer::new(
                self.zookeeper.clone(),
                format!("/services/{service}/{transport}"),
                ZkOptions::new().logger(logger.clone()),
            )));
        }
        if let Some(agent) = &self.consul {
            // `addsvc` for HTTP, `addsvc-grpc` for gRPC: one Consul service per transport.
            let name = match transport {
                "http" => service.to_owned(),
                other => format!("{service}-{other}"),
            };
            return Ok(Box::new(ConsulInstancer::new(
                agent,
                &name,
                ConsulOptions::new().logger(logger.clone()),
            )?));
        }
        if !self.dns.is_empty() {
            // `_addsvc._tcp.<domain>` for HTTP, `_addsvc-grpc._tcp.<domain>` for gRPC.
            let suffix = if transport == "http" {
                String::new()
            } else {
                format!("-{transport}")
            };
            let name = format!("_{service}{suffix}._tcp.{}", self.dns_domain);
            return Ok(Box::new(SrvInstancer::new(
                &name,
                self.dns.clone(),
                SrvOptions::new().logger(logger.clone()),
            )?));
        }
        Ok(Box::new(Fixed::new(list.iter().cloned())))
    }
}

/// What the gateway needs for each route: its stack (logging, metrics, tracing, timeout), the
/// options of its clients, and the tracer.
struct Routes {
    logger: Logger,
    requests: PrometheusCounter,
    durations: PrometheusHistogram,
    tracer: Option<SdkTracer>,
    timeout: Duration,
    client: ClientOptions,
}

impl Routes {
    /// The endpoint a route calls: retries over p2c over the instances `endpointer` follows,
    /// behind the gateway's stack.
    fn endpoint<Req, Resp>(
        &self,
        name: &'static str,
        instances: &dyn Instancer,
        make: impl Fn(&str) -> Result<BoxEndpoint<Req, Resp>, Error> + Send + Sync + 'static,
    ) -> Result<BoxEndpoint<Req, Resp>, BoxError>
    where
        Req: Clone + Send + 'static,
        Resp: Send + 'static,
    {
        let client = self.client.clone();
        // Per instance: its client, a CLIENT span per attempt when tracing, its own breaker.
        let factory = move |instance: &str| Ok(client.instance(name, make(instance)?));
        let endpointer = Endpointer::new(
            instances,
            factory,
            EndpointerOptions::new().logger(self.logger.clone()),
        );
        let balanced = Retry::new()
            .max_attempts(self.client.attempts)
            .wrap(Balanced::new(P2c::new(endpointer)));
        Ok(ServerStack::new(name)
            .logging(self.logger.clone())
            .metrics(self.requests.clone(), self.durations.clone())?
            .with(self.tracer.as_ref().map(|t| Tracing::new(t.clone())))
            .timeout(self.timeout)
            .wrap(balanced))
    }

    fn options(&self) -> kit_transport_http::ServerOptions {
        match &self.tracer {
            // A public edge: the trace is continued, but whether it is sampled is ours to
            // say, not any client's.
            Some(tracer) => ServerTracing::new(tracer.clone())
                .propagation(Propagation::default().trust_sampling(false))
                .http_options(http_options()),
            None => http_options(),
        }
    }
}

/// A stringsvc instance's method, JSON in and out, as the gateway passes it on.
fn stringsvc_client(instance: &str, path: &str) -> Result<BoxEndpoint<Value, Value>, Error> {
    let uri = format!("http://{instance}{path}")
        .parse()
        .map_err(|err| Error::invalid_argument(format!("bad instance {instance:?}: {err}")))?;
    Ok(BoxEndpoint::new(
        kit_transport_http::Client::new(
            Method::POST,
            uri,
            json::encode_request,
            json::decode_response::<Value>,
        )
        .before(kit_trace::http::inject(Propagation::default())),
    ))
}

async fn run(config: Config, logger: Logger) -> Result<(), BoxError> {
    let registry = Registry::new();
    let requests = PrometheusCounter::new(
        &registry,
        "apigateway_requests_total",
        "Requests served, by method and outcome.",
        &METHOD_OUTCOME_LABELS,
    )?;
    let durations = PrometheusHistogram::new(
        &registry,
        "apigateway_request_duration_seconds",
        "Request duration in seconds, by method and outcome.",
        &METHOD_OUTCOME_LABELS,
        DEFAULT_BUCKETS.to_vec(),
    )?;
    let instances_gauge = PrometheusGauge::new(
        &registry,
        "apigateway_instances",
        "Instances the gateway knows, by service.",
        &["service"],
    )?;

    // The group's drain deadline follows from the listeners' drain timeouts.
    let mut group = Group::new();
    group.stop_on_signals()?;
    let http = kit_transport_http::Listener::bind(config.http_addr)
        .await?
        .drain_timeout(config.drain_timeout);
    let debug = kit_transport_http::Listener::bind(config.debug_addr)
        .await?
        .drain_timeout(config.drain_timeout);
    let tracing = config
        .zipkin_url
        .clone()
        .map(|url| kit_trace::ZipkinTracing::new("apigateway", url, 1.0));
    let routes = Routes {
        logger: logger.clone(),
        requests,
        durations,
        tracer: tracing.as_ref().map(|t| t.provider().tracer("apigateway")),
        timeout: config.timeout,
        client: ClientOptions {
            attempts: config.attempts,
            tracer: tracing.as_ref().map(|t| t.provider().tracer("apigateway")),
            ..ClientOptions::default()
        },
    };

    let transport_name = match config.transport {
        Transport::Grpc => "grpc",
        _ => "http",
    };
    let addsvc = config.instancer("addsvc", transport_name, &config.addsvc, &logger)?;
    let stringsvc = config.instancer("stringsvc", "http", &config.stringsvc, &logger)?;
    let transport = config.transport;
    let sum = routes.endpoint("addsvc.sum", addsvc.as_ref(), move |i| {
        instance_clients(transport, i).map(|c| c.sum)
    })?;
    let concat = routes.endpoint("addsvc.concat", addsvc.as_ref(), move |i| {
        instance_clients(transport, i).map(|c| c.concat)
    })?;
    let uppercase = routes.endpoint("stringsvc.uppercase", stringsvc.as_ref(), |i| {
        stringsvc_client(i, "/uppercase")
    })?;
    let count = routes.endpoint("stringsvc.count", stringsvc.as_ref(), |i| {
        stringsvc_client(i, "/count")
    })?;

    let router = Router::new()
        .post(
            "/addsvc/sum",
            Server::new(
                sum,
                |cx, r: &Request<Bytes>| {
                    json::decode_request::<Members<i64>>(cx, r).map(Into::into)
                },
                |cx, v: i64| json::encode_response(cx, json!({ "v": v })),
            )
            .options(routes.options()),
        )
        .post(
            "/addsvc/concat",
            Server::new(
                concat,
                |cx, r: &Request<Bytes>| {
                    json::decode_request::<Members<String>>(cx, r).map(Into::into)
                },
                |cx, v: String| json::encode_response(cx, json!({ "v": v })),
            )
            .options(routes.options()),
        )
        .post(
            "/stringsvc/uppercase",
            Server::new(uppercase, json::decode_request, json::encode_response)
                .options(routes.options()),
        )
        .post(
            "/stringsvc/count",
            Server::new(count, json::decode_request, json::encode_response)
                .options(routes.options()),
        );

    // The instance counts, for /metrics and for whoever watches the gateway converge.
    for (service, instancer) in [("addsvc", &addsvc), ("stringsvc", &stringsvc)] {
        let gauge = instances_gauge.with(&[service])?;
        let mut events = instancer.subscribe();
        let (stopping, logger) = (group.stopping(), logger.clone());
        group.spawn_observer(service, async move {
            loop {
                let known = events.borrow_and_update().as_ref().map_or(0, |set| set.len());
                gauge.set(known as f64);
                kit_log::info!(logger, "service", service, "instances", known);
                tokio::select! {
                    changed = events.changed() => if changed.is_err() { return Ok::<_, BoxError>(()) },
                    () = stopping.wait() => return Ok(()),
                }
            }
        });
    }

    kit_log::info!(logger, "transport", "HTTP", "addr", http.local_addr());
    kit_log::info!(
        logger,
        "transport",
        "debug/HTTP",
        "addr",
        debug.local_addr()
    );
    group.serve_http("HTTP", http, router);
    let debug_handler = DebugHandler::new(group.health()).metrics(registry);
    group.serve_http_observer("debug/HTTP", debug, debug_handler);
    let result = group.run().await;
    drop((addsvc, stringsvc));
    if let Some(tracing) = tracing
        && let Err(err) = tracing.shutdown().await
    {
        kit_log::warn!(
            logger,
            "msg",
            "flushing spans",
            "err",
            format_args!("{err}")
        );
    }
    match &result {
        Ok(()) => kit_log::info!(logger, "msg", "stopped"),
        Err(err) => kit_log::error!(logger, "msg", "stopped", "err", format_args!("{err}")),
    };
    result.map_err(Into::into)
}

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::from_args(std::env::args_os());
    let (logger, _log_writer) = addsvc::logger(config.json_logs);
    let logger = logger.with(kit_log::kv!("svc", "apigateway"));
    match run(config, logger).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("apigateway: {err}");
            ExitCode::FAILURE
        }
    }
}

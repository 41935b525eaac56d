//! axumsvc: kit endpoints in an axum app, for teams that write their HTTP services with axum.
//!
//! One axum `Router` holds both kinds of route:
//!
//! - `GET /hello/{name}`: an ordinary axum handler, with axum's extractors;
//! - `POST /uppercase`: one kit `Server` (decoder, endpoint, encoder, error encoder, hooks),
//!   mounted with `route_service`: a kit server is a tower service, nothing to adapt;
//! - `POST /kit/count` and `POST /kit/sleep`: a kit `Router` nested under `/kit` with
//!   `nest_service`, so a whole kit service moves into an axum app as it is.
//!
//! Around them, tower-http's layers, outermost first: a trace layer (its events written as log
//! lines through kit-log's `tracing` bridge), request ids (minted when the client sent none, and
//! returned), CORS, a timeout (`--timeout-ms`, 408 past it) and gzip compression. The app is
//! served by kit's `Listener` (header, body and write timeouts, a connection cap, a graceful
//! drain), run by kit-server's `Group` until SIGINT or SIGTERM.
//!
//! `cargo run -p axumsvc`, then `curl -d '{"s":"hi"}' localhost:8080/uppercase`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use kit_core::{Error, endpoint_fn};
use kit_log::{Logfmt, Logger, TracingLayer, kv, timestamp_utc};
use kit_server::Group;
use kit_transport_http::{Listener, Router, Server, ServerOptions, json};
use serde::{Deserialize, Serialize};
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing_subscriber::layer::SubscriberExt;

/// axumsvc's command line.
#[derive(clap::Parser, Debug)]
#[command(
    name = "axumsvc",
    version,
    about = "kit endpoints in an axum app, with tower-http's layers"
)]
struct Flags {
    /// Listen address
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// The most time a request may take, in milliseconds (tower-http's timeout: 408 past it)
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

#[derive(Deserialize)]
struct StringRequest {
    #[serde(default)]
    s: String,
}

#[derive(Deserialize)]
struct SleepRequest {
    ms: u64,
}

#[derive(Serialize)]
struct Reply<T> {
    v: T,
}

/// The axum app: axum handlers and kit servers side by side, under tower-http's layers.
fn app(timeout: Duration) -> axum::Router {
    let uppercase = endpoint_fn(|_cx, r: StringRequest| async move {
        if r.s.is_empty() {
            return Err(Error::invalid_argument("empty string"));
        }
        Ok(Reply {
            v: r.s.to_uppercase(),
        })
    });
    // A kit server keeps its hooks when axum serves it.
    let uppercase = Server::new(uppercase, json::decode_request, json::encode_response).options(
        ServerOptions::new().after(|_cx, head| {
            head.headers
                .insert("x-served-by", http::HeaderValue::from_static("kit"));
        }),
    );
    let count =
        endpoint_fn(|_cx, r: StringRequest| async move { Ok::<_, Error>(Reply { v: r.s.len() }) });
    let sleep = endpoint_fn(|_cx, r: SleepRequest| async move {
        tokio::time::sleep(Duration::from_millis(r.ms)).await;
        Ok::<_, Error>(Reply { v: r.ms })
    });
    let kit = Router::new()
        .post(
            "/count",
            Server::new(count, json::decode_request, json::encode_response),
        )
        .post(
            "/sleep",
            Server::new(sleep, json::decode_request, json::encode_response),
        );
    axum::Router::new()
        .route("/hello/{name}", get(hello))
        .route_service("/uppercase", uppercase)
        .nest_service("/kit", kit)
        // Layers run outside in: the last added is the first to see a request.
        .layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(CorsLayer::permissive())
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http()
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
}

/// An ordinary axum handler.
async fn hello(Path(name): Path<String>) -> String {
    format!("hello, {name}")
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let flags = <Flags as clap::Parser>::parse();
    // tower-http's trace layer speaks `tracing`; kit-log writes its events as log lines.
    let (encoder, _flush) = Logfmt::non_blocking(std::io::stderr(), 4096);
    let logger = Logger::new(slog::Drain::ignore_res(encoder)).with(kv!("ts", timestamp_utc()));
    tracing::subscriber::set_global_default(
        tracing_subscriber::registry().with(TracingLayer::new(logger.clone())),
    )?;

    let listener = Listener::bind(flags.listen).await?;
    eprintln!("listening on {}", listener.local_addr());
    let mut group = Group::new();
    group.stop_on_signals()?;
    let app = app(Duration::from_millis(flags.timeout_ms));
    group.serve_http("HTTP", listener, app);
    let result = group.run().await;
    kit_log::info!(logger, "msg", "stopped");
    Ok(result?)
}

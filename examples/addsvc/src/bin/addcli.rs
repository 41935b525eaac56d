//! addcli: calls any addsvc (this one or go-kit's) over HTTP, gRPC or JSON-RPC.
//!
//! `addcli -http-addr HOST:PORT[,HOST:PORT...] | -grpc-addr ... | -jsonrpc-addr ...
//! [-method sum|concat] A B` prints `1 + 2 = 3` or `"a" + "b" = "ab"`, and exits non-zero with
//! the error on failure. With several addresses of one transport it balances over them
//! (kit-client's p2c); `-attempts`, `-breaker` and `-rate-limit` set the retries, the breaker
//! on each instance and a calls-per-second limit.

use std::num::NonZeroU32;
use std::process::ExitCode;
use std::time::Duration;

use addsvc::flags;
use addsvc::transport::{AddClient, ClientOptions, Transport};
use kit_core::Context;
use opentelemetry::trace::TracerProvider;

/// addcli's command line: go-kit addcli's flag names (`-name` or `--name`), then A and B.
#[derive(clap::Parser, Debug)]
#[command(
    name = "addcli",
    version,
    about = "Calls any addsvc (kit-rs's or go-kit's) over HTTP, gRPC or JSON-RPC"
)]
#[command(group = clap::ArgGroup::new("transport").required(true).args(["http_addr", "grpc_addr", "jsonrpc_addr"]))]
struct Flags {
    /// HTTP addresses of addsvc, comma-separated
    #[arg(long)]
    http_addr: Option<String>,
    /// gRPC addresses of addsvc, comma-separated
    #[arg(long)]
    grpc_addr: Option<String>,
    /// JSON-RPC addresses of addsvc, comma-separated
    #[arg(long)]
    jsonrpc_addr: Option<String>,
    /// The method to call
    #[arg(long, value_enum, default_value_t = Method::Sum)]
    method: Method,
    /// The most time the call may take, retries included
    #[arg(long, default_value = "10s", value_parser = flags::duration)]
    timeout: Duration,
    /// Attempts per call, the first included; retries go to another instance
    #[arg(long, default_value = "3", value_parser = flags::positive)]
    attempts: u32,
    /// A circuit breaker on each instance: true or false
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    breaker: bool,
    /// Calls per second at most (0: no limit)
    #[arg(long, default_value_t = 0)]
    rate_limit: u32,
    /// Zipkin collector URL, e.g. http://localhost:9411/api/v2/spans (none: no tracing)
    #[arg(long, default_value = "", hide_default_value = true, value_parser = flags::maybe_http_url)]
    zipkin_url: flags::MaybeUrl,
    /// The first operand: an integer for sum, a string for concat
    #[arg(allow_negative_numbers = true)]
    a: String,
    /// The second operand
    #[arg(allow_negative_numbers = true)]
    b: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Method {
    Sum,
    Concat,
}

async fn run(f: Flags) -> Result<String, String> {
    let (addrs, transport) = match (&f.http_addr, &f.grpc_addr, &f.jsonrpc_addr) {
        (Some(addrs), None, None) => (addrs, Transport::Http),
        (None, Some(addrs), None) => (addrs, Transport::Grpc),
        (None, None, Some(addrs)) => (addrs, Transport::JsonRpc),
        _ => unreachable!("clap's group admits exactly one"),
    };
    let addrs = flags::list(addrs);
    let addrs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    // go-kit addcli's -zipkin-url: each call a trace, its attempts CLIENT spans whose context
    // goes out in B3 headers.
    let tracing = f
        .zipkin_url
        .0
        .clone()
        .map(|url| kit_trace::ZipkinTracing::new("addcli", url, 1.0));
    let options = ClientOptions {
        attempts: f.attempts,
        breaker: f.breaker,
        rate_limit: NonZeroU32::new(f.rate_limit),
        tracer: tracing.as_ref().map(|t| t.provider().tracer("addcli")),
    };
    let client = AddClient::new(transport, &addrs, &options).map_err(|err| err.to_string())?;
    let result = call(&f, &client).await;
    if let Some(tracing) = tracing {
        // The call's spans go to the collector before the process ends.
        if let Err(err) = tracing.shutdown().await {
            eprintln!("addcli: flushing spans: {err}");
        }
    }
    result
}

/// The call the operands ask for, as the line addcli prints.
async fn call(f: &Flags, client: &AddClient) -> Result<String, String> {
    let (a, b) = (&f.a, &f.b);
    let cx = Context::new().with_timeout(f.timeout);
    match f.method {
        Method::Sum => {
            let (x, y) = (integer(a)?, integer(b)?);
            let v = client.sum(cx, x, y).await.map_err(|e| e.to_string())?;
            Ok(format!("{x} + {y} = {v}"))
        }
        Method::Concat => {
            let v = client
                .concat(cx, a.clone(), b.clone())
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("{a:?} + {b:?} = {v:?}"))
        }
    }
}

fn integer(s: &str) -> Result<i64, String> {
    s.parse().map_err(|_| format!("{s:?} is not an integer"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let f: Flags = flags::parse(std::env::args_os());
    match run(f).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("addcli: {err}");
            ExitCode::FAILURE
        }
    }
}

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

use addsvc::flags::{self, Flag};
use addsvc::transport::{AddClient, ClientOptions, Transport};
use kit_core::Context;
use opentelemetry::trace::TracerProvider;

const FLAGS: &[Flag] = &[
    Flag::new("http-addr", "", "HTTP addresses of addsvc, comma-separated"),
    Flag::new("grpc-addr", "", "gRPC addresses of addsvc, comma-separated"),
    Flag::new(
        "jsonrpc-addr",
        "",
        "JSON-RPC addresses of addsvc, comma-separated",
    ),
    Flag::new("method", "sum", "sum or concat"),
    Flag::new(
        "timeout",
        "10s",
        "the most time the call may take, retries included",
    ),
    Flag::new(
        "attempts",
        "3",
        "attempts per call, the first included; retries go to another instance",
    ),
    Flag::new(
        "breaker",
        "true",
        "a circuit breaker on each instance: true or false",
    ),
    Flag::new("rate-limit", "0", "calls per second at most (0: no limit)"),
    Flag::new(
        "zipkin-url",
        "",
        "Zipkin collector URL, e.g. http://localhost:9411/api/v2/spans (none: no tracing)",
    ),
];

async fn run() -> Result<String, String> {
    let parsed = flags::parse(FLAGS, std::env::args().skip(1))?;
    let addrs = [
        ("http-addr", Transport::Http),
        ("grpc-addr", Transport::Grpc),
        ("jsonrpc-addr", Transport::JsonRpc),
    ];
    let mut chosen = addrs
        .iter()
        .filter(|(flag, _)| !parsed.get(flag).is_empty());
    let (flag, transport) = match (chosen.next(), chosen.next()) {
        (Some(one), None) => one,
        _ => {
            return Err(format!(
                "give exactly one of -http-addr, -grpc-addr, -jsonrpc-addr\n{}",
                flags::usage(FLAGS)
            ));
        }
    };
    let addrs: Vec<&str> = parsed
        .get(flag)
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    let options = ClientOptions {
        attempts: parsed
            .get("attempts")
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or("-attempts: a positive integer")?,
        breaker: match parsed.get("breaker") {
            "true" => true,
            "false" => false,
            other => return Err(format!("-breaker: {other:?} is not true or false")),
        },
        rate_limit: match parsed.get("rate-limit").parse::<u32>() {
            Ok(n) => NonZeroU32::new(n),
            Err(_) => return Err("-rate-limit: a number of calls per second".into()),
        },
        tracer: None,
    };
    // go-kit addcli's -zipkin-url: each call a trace, its attempts CLIENT spans whose context
    // goes out in B3 headers.
    let tracing = match parsed.get("zipkin-url") {
        "" => None,
        url => Some(kit_trace::Tracing::zipkin(
            "addcli",
            url.parse::<http::Uri>()
                .ok()
                .filter(|u| u.scheme_str() == Some("http") && u.host().is_some())
                .ok_or_else(|| format!("-zipkin-url: {url:?} is not an http:// URL"))?,
            1.0,
        )),
    };
    let options = ClientOptions {
        tracer: tracing.as_ref().map(|t| t.provider().tracer("addcli")),
        ..options
    };
    let client = AddClient::new(*transport, &addrs, &options).map_err(|err| err.to_string())?;
    let result = call(&parsed, &client).await;
    if let Some(tracing) = tracing {
        // The call's spans go to the collector before the process ends.
        if let Err(err) = tracing.shutdown().await {
            eprintln!("addcli: flushing spans: {err}");
        }
    }
    result
}

/// The call the positional arguments ask for, as the line addcli prints.
async fn call(parsed: &flags::Parsed, client: &AddClient) -> Result<String, String> {
    let [a, b] = parsed.positional.as_slice() else {
        return Err(format!(
            "two arguments, A and B: got {}",
            parsed.positional.len()
        ));
    };
    let timeout: Duration = flags::duration(parsed.get("timeout"))?;
    let cx = Context::new().with_timeout(timeout);
    match parsed.get("method") {
        "sum" => {
            let (x, y) = (integer(a)?, integer(b)?);
            let v = client.sum(cx, x, y).await.map_err(|e| e.to_string())?;
            Ok(format!("{x} + {y} = {v}"))
        }
        "concat" => {
            let v = client
                .concat(cx, a.clone(), b.clone())
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("{a:?} + {b:?} = {v:?}"))
        }
        other => Err(format!("-method: {other:?} is not sum or concat")),
    }
}

fn integer(s: &str) -> Result<i64, String> {
    s.parse().map_err(|_| format!("{s:?} is not an integer"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
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

//! addcli: calls any addsvc (this one or go-kit's) over HTTP, gRPC or JSON-RPC.
//!
//! `addcli -http-addr HOST:PORT | -grpc-addr HOST:PORT | -jsonrpc-addr HOST:PORT
//! [-method sum|concat] A B` prints `1 + 2 = 3` or `"a" + "b" = "ab"`, and exits non-zero with
//! the error on failure.

use std::process::ExitCode;
use std::time::Duration;

use addsvc::flags::{self, Flag};
use addsvc::transport::AddClient;
use kit_core::Context;

const FLAGS: &[Flag] = &[
    Flag::new("http-addr", "", "HTTP address of addsvc"),
    Flag::new("grpc-addr", "", "gRPC address of addsvc"),
    Flag::new("jsonrpc-addr", "", "JSON-RPC address of addsvc"),
    Flag::new("method", "sum", "sum or concat"),
    Flag::new("timeout", "10s", "the most time the call may take"),
];

async fn run() -> Result<String, String> {
    let parsed = flags::parse(FLAGS, std::env::args().skip(1))?;
    let addrs = [
        ("http-addr", AddClient::http as fn(&str) -> _),
        ("grpc-addr", AddClient::grpc),
        ("jsonrpc-addr", AddClient::jsonrpc),
    ];
    let mut chosen = addrs
        .iter()
        .filter(|(flag, _)| !parsed.get(flag).is_empty());
    let (flag, make) = match (chosen.next(), chosen.next()) {
        (Some(one), None) => one,
        _ => {
            return Err(format!(
                "give exactly one of -http-addr, -grpc-addr, -jsonrpc-addr\n{}",
                flags::usage(FLAGS)
            ));
        }
    };
    let client = make(parsed.get(flag)).map_err(|err| err.to_string())?;
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

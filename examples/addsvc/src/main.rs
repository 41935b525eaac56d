//! addsvc: go-kit's addsvc example service, wire-compatible, in kit-rs. Starts with no setup:
//! `cargo run -p addsvc`, then `curl -d '{"a":1,"b":2}' localhost:8081/sum`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config = addsvc::Config::from_args(std::env::args_os());
    let (logger, _log_writer) = addsvc::logger(config.json_logs);
    match addsvc::run(config, logger).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("addsvc: {err}");
            ExitCode::FAILURE
        }
    }
}

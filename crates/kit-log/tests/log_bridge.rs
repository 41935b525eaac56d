//! Records of the `log` crate reach a kit logger with level, message and target, after the
//! logger's context, with the `log` statement as the caller. One test: `log` allows one logger
//! per process.

mod support;

use kit_log::{Level, LogBridge, Logfmt, Logger, caller, kv};
use slog::Drain;
use support::Captured;

#[test]
fn log_records_flow_into_a_kit_logger() {
    let out = Captured::default();
    let logger = Logger::new(Logfmt::new(out.clone()).ignore_res()).with(kv!(
        "svc",
        "add",
        "caller",
        caller()
    ));
    LogBridge::new(logger.clone())
        .install(Level::Info)
        .expect("the first `log` logger of this process");

    let line = line!() + 1;
    log::info!(target: "db", "connected to {} in {}ms", "10.0.0.1:5432", 12);
    log::debug!("below the installed level");
    log::warn!("a b=c");
    log::error!(target: "", "");
    let file = file!();
    assert_eq!(
        out.text(),
        format!(
            "level=info svc=add caller={file}:{line} msg=\"connected to 10.0.0.1:5432 in 12ms\" target=db\n\
             level=warn svc=add caller={file}:{} msg=\"a b=c\" target=log_bridge\n\
             level=error svc=add caller={file}:{} target=\"\"\n",
            line + 2,
            line + 3
        )
    );

    // A second install is refused: `log` has one logger per process.
    assert!(LogBridge::new(logger).install(Level::Debug).is_err());
}

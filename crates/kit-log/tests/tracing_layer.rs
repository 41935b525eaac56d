//! `tracing` events reach a kit logger through the layer: level, message, target and fields, the
//! event's place as the caller, and other layers beside it still work.
#![cfg(feature = "tracing")]

mod support;

use kit_log::{Json, Level, LevelFilter, Logfmt, Logger, TracingLayer, caller, kv};
use slog::Drain;
use support::Captured;
use tracing_subscriber::layer::SubscriberExt;

/// Written through its `Debug` only.
#[derive(Debug)]
struct Point {
    #[expect(dead_code, reason = "read by the derived Debug")]
    x: i32,
}

#[test]
fn events_become_records_with_level_message_target_and_fields() {
    let out = Captured::default();
    let logger = Logger::new(Logfmt::new(out.clone()).ignore_res()).with(kv!("caller", caller()));
    let subscriber = tracing_subscriber::registry().with(TracingLayer::new(logger));
    let file = file!();
    let line = tracing::subscriber::with_default(subscriber, || {
        let line = line!() + 1;
        tracing::info!(target: "db", rows = 3_u64, ok = true, ratio = 0.5, "query {} done", "q1");
        tracing::warn!(delta = -2_i64, point = ?Point { x: 1 }, name = "a b");
        tracing::trace!("fine detail");
        let err = std::io::Error::other("disk full");
        tracing::error!(error = &err as &dyn std::error::Error, "write failed");
        tracing::info_span!("span", id = 1).in_scope(|| tracing::info!("inside"));
        line
    });
    assert_eq!(
        out.text(),
        format!(
            "level=info caller={file}:{line} msg=\"query q1 done\" target=db rows=3 ok=true ratio=0.5\n\
             level=warn caller={file}:{} target=tracing_layer delta=-2 point=\"Point {{ x: 1 }}\" name=\"a b\"\n\
             level=debug caller={file}:{} msg=\"fine detail\" target=tracing_layer\n\
             level=error caller={file}:{} msg=\"write failed\" target=tracing_layer error=\"disk full\"\n\
             level=info caller={file}:{} msg=inside target=tracing_layer\n",
            line + 1,
            line + 2,
            line + 4,
            line + 5,
        )
    );
}

#[test]
fn the_drain_filters_and_json_stays_valid() {
    let out = Captured::default();
    let drain = LevelFilter::new(Json::new(out.clone()).ignore_res(), Level::Warn);
    let subscriber = tracing_subscriber::registry().with(TracingLayer::new(Logger::new(drain)));
    tracing::subscriber::with_default(subscriber, || {
        tracing::info!("dropped by the filter");
        tracing::error!(code = 7, "quote \" and\nnewline");
    });
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["level"], "error");
    assert_eq!(v["msg"], "quote \" and\nnewline");
    assert_eq!(v["target"], "tracing_layer");
    assert_eq!(v["code"], 7);
}

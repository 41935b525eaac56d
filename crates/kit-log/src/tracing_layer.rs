//! `tracing` events into a kit logger (feature `tracing`), as a `tracing_subscriber::Layer` so
//! that it sits beside other layers (an OpenTelemetry layer, a formatter).

use std::fmt::{self, Write as _};

use slog::{Key, RecordLocation, RecordStatic, Serializer, Value};
use tracing_core::field::{Field, Visit};
use tracing_core::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::logger::Logger;

/// A `tracing_subscriber::Layer` that writes each `tracing` event to a kit [`Logger`]: its level
/// as `level`, its `message` field as `msg`, its target as `target`, then its other fields in
/// the order written. The event's `file:line` is the place [`caller`](crate::caller) reports;
/// `trace` events become `debug`. Spans are not written: only events are records.
///
/// Each event's fields are copied out before they are encoded, which allocates; the layer is a
/// bridge for libraries that use `tracing`, not the fast path.
///
/// ```
/// use kit_log::{Logfmt, Logger, TracingLayer};
/// use slog::Drain;
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let logger = Logger::new(Logfmt::new(std::io::stderr()).ignore_res());
/// let subscriber = tracing_subscriber::registry().with(TracingLayer::new(logger));
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::warn!(retries = 3, "upstream slow");
///     // level=warn msg="upstream slow" target=rust_out retries=3
/// });
/// ```
#[derive(Clone, Debug)]
pub struct TracingLayer {
    logger: Logger,
}

impl TracingLayer {
    /// Writes `tracing` events to `logger`.
    pub fn new(logger: Logger) -> Self {
        TracingLayer { logger }
    }
}

fn slog_level(level: tracing_core::Level) -> slog::Level {
    match level {
        tracing_core::Level::ERROR => slog::Level::Error,
        tracing_core::Level::WARN => slog::Level::Warning,
        tracing_core::Level::INFO => slog::Level::Info,
        _ => slog::Level::Debug,
    }
}

/// A field's value, copied out of the event.
enum FieldValue {
    Text(String),
    I64(i64),
    U64(u64),
    I128(i128),
    U128(u128),
    F64(f64),
    Bool(bool),
}

impl Value for FieldValue {
    fn serialize(
        &self,
        _: &slog::Record<'_>,
        key: Key,
        serializer: &mut dyn Serializer,
    ) -> slog::Result {
        match self {
            FieldValue::Text(s) => serializer.emit_str(key, s),
            FieldValue::I64(n) => serializer.emit_i64(key, *n),
            FieldValue::U64(n) => serializer.emit_u64(key, *n),
            FieldValue::I128(n) => serializer.emit_i128(key, *n),
            FieldValue::U128(n) => serializer.emit_u128(key, *n),
            FieldValue::F64(f) => serializer.emit_f64(key, *f),
            FieldValue::Bool(b) => serializer.emit_bool(key, *b),
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, FieldValue)>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: FieldValue) {
        self.pairs.push((field.name(), value));
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push(field, FieldValue::Text(format!("{value:?}")));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.push(field, FieldValue::Text(value.to_owned()));
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, FieldValue::Text(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, FieldValue::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, FieldValue::U64(value));
    }
    fn record_i128(&mut self, field: &Field, value: i128) {
        self.push(field, FieldValue::I128(value));
    }
    fn record_u128(&mut self, field: &Field, value: u128) {
        self.push(field, FieldValue::U128(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, FieldValue::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, FieldValue::Bool(value));
    }
}

impl<S: Subscriber> Layer<S> for TracingLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let location = RecordLocation {
            file: meta.file().unwrap_or("<unknown>"),
            line: meta.line().unwrap_or(0),
            column: 0,
            function: "",
            module: meta.module_path().unwrap_or(""),
        };
        let rstatic = RecordStatic {
            location: &location,
            tag: "",
            level: slog_level(*meta.level()),
        };
        let target = meta.target();
        let pairs: Vec<(&'static str, &dyn Value)> =
            std::iter::once(("target", &target as &dyn Value))
                .chain(fields.pairs.iter().map(|(k, v)| (*k, v as &dyn Value)))
                .collect();
        // An event without a message writes no `msg`, as a record with an empty one.
        if fields.message.is_empty() {
            self.logger.write(&rstatic, &format_args!(""), &pairs);
        } else {
            self.logger
                .write(&rstatic, &format_args!("{}", fields.message), &pairs);
        }
    }
}

//! kit-log's encoders beside slog's own drains doing the same work, in the same run. Named as
//! go-kit's benchmarks: simple (a message and 2 pairs), contextual (4 context pairs and 2
//! pairs), a disallowed level, and the timestamp and caller values. Every drain writes to
//! `io::sink()`, so what is measured is encoding and the per-record write path.

use std::hint::black_box;
use std::io;

use criterion::{Criterion, criterion_group, criterion_main};
use kit_log::{Level, LevelFilter, caller, timestamp_utc};
use slog::{Discard, Drain, FnValue, Logger, PushFnValue, info, o};

fn term() -> Logger {
    let decorator = slog_term::PlainSyncDecorator::new(io::sink());
    // No timestamp in slog-term's header: the kit-log encoders write none unless asked.
    let format = slog_term::FullFormat::new(decorator)
        .use_custom_timestamp(|_: &mut dyn io::Write| Ok(()))
        .build();
    Logger::root(format.fuse(), o!())
}

fn slog_json() -> Logger {
    // slog-json's default keys minus the timestamp: level and msg, as kit-log writes.
    let json = slog_json::Json::new(io::sink())
        .set_newlines(true)
        .add_key_value(o!(
            "level" => FnValue(|r| r.level().as_str()),
            "msg" => PushFnValue(|r, ser| ser.emit(r.msg())),
        ))
        .build();
    Logger::root(std::sync::Mutex::new(json).fuse(), o!())
}

fn kit_logfmt() -> Logger {
    Logger::root(kit_log::Logfmt::new(io::sink()).fuse(), o!())
}

fn kit_json() -> Logger {
    Logger::root(kit_log::Json::new(io::sink()).fuse(), o!())
}

fn contextual(log: &Logger) -> Logger {
    log.new(o!("svc" => "add", "ver" => 2, "host" => "h-1", "pid" => 4242))
}

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("log");
    for (name, log) in [
        ("logfmt", kit_logfmt()),
        ("json", kit_json()),
        ("slog_term", term()),
        ("slog_json", slog_json()),
    ] {
        g.bench_function(format!("simple/{name}"), |b| {
            b.iter(|| info!(log, "hello"; "k1" => black_box(1), "k2" => "v2"))
        });
        let ctx = contextual(&log);
        g.bench_function(format!("contextual/{name}"), |b| {
            b.iter(|| info!(ctx, "hello"; "k1" => black_box(1), "k2" => "v2"))
        });
        let valued = log.new(o!("ts" => timestamp_utc(), "caller" => caller()));
        g.bench_function(format!("timestamp_caller/{name}"), |b| {
            b.iter(|| info!(valued, "hello"; "k1" => black_box(1)))
        });
    }

    // Filtered at warn, logged at info: slog compiles debug! out of release builds, which
    // would measure nothing.
    let kit_filtered = Logger::root(
        LevelFilter::new(kit_log::Logfmt::new(io::sink()), Level::Warn).ignore_res(),
        o!(),
    );
    g.bench_function("disallowed/kit_level_filter", |b| {
        b.iter(|| info!(kit_filtered, "hello"; "k1" => black_box(1), "k2" => "v2"))
    });
    let slog_filtered = Logger::root(
        slog::LevelFilter::new(kit_log::Logfmt::new(io::sink()), slog::Level::Warning).ignore_res(),
        o!(),
    );
    g.bench_function("disallowed/slog_level_filter", |b| {
        b.iter(|| info!(slog_filtered, "hello"; "k1" => black_box(1), "k2" => "v2"))
    });
    let discard = Logger::root(Discard, o!());
    g.bench_function("disallowed/slog_discard", |b| {
        b.iter(|| info!(discard, "hello"; "k1" => black_box(1), "k2" => "v2"))
    });

    // The go-kit-style Logger and its macros on the same encoder: what the wrapper costs.
    let kit = kit_log::Logger::new(kit_log::Logfmt::new(io::sink()).ignore_res());
    g.bench_function("simple/kit_logger_logfmt", |b| {
        b.iter(|| kit_log::info!(kit, "msg", "hello", "k1", black_box(1), "k2", "v2"))
    });
    let kit_ctx = kit.with(kit_log::kv!(
        "svc", "add", "ver", 2, "host", "h-1", "pid", 4242
    ));
    g.bench_function("contextual/kit_logger_logfmt", |b| {
        b.iter(|| kit_log::info!(kit_ctx, "msg", "hello", "k1", black_box(1), "k2", "v2"))
    });
    let kit_filtered = kit_log::Logger::new(LevelFilter::new(
        kit_log::Logfmt::new(io::sink()).ignore_res(),
        Level::Warn,
    ));
    g.bench_function("disallowed/kit_logger", |b| {
        b.iter(|| kit_log::info!(kit_filtered, "msg", "hello", "k1", black_box(1), "k2", "v2"))
    });
    // The non-blocking writer: encoding and queueing on the caller's thread, a writer thread
    // behind. A queue large enough that nothing is dropped at this rate into a sink.
    let (encoder, guard) = kit_log::Logfmt::non_blocking(io::sink(), 65_536);
    let non_blocking = Logger::root(encoder.fuse(), o!());
    g.bench_function("simple/logfmt_non_blocking", |b| {
        b.iter(|| info!(non_blocking, "hello"; "k1" => black_box(1), "k2" => "v2"))
    });
    g.finish();
    guard.flush().expect("flushing the non-blocking writer");
    eprintln!("non-blocking writer: {} records dropped", guard.dropped());
}

criterion_group!(log, benches);
criterion_main!(log);

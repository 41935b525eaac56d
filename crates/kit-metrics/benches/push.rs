//! The caller's cost of the push backends: what a StatsD counter add, a sampled add, a timing
//! and a DogStatsD add with labels resolved per call cost on the caller's thread (the flush
//! thread does the sending). The flush interval is long, so the measured thread runs alone.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use kit_metrics::statsd::{DogStatsd, Statsd};
use kit_metrics::{Counter, Histogram, PushOptions};

fn benches(c: &mut Criterion) {
    // Nobody listens on the sink: UDP sends cost nothing that matters here, and none happen.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP port");
    let to = sink.local_addr().expect("its address");
    let options = PushOptions {
        flush_interval: Duration::from_secs(3600),
        ..PushOptions::default()
    };
    let statsd = Statsd::new("bench.", to, options).expect("a StatsD backend");
    let counter = statsd.counter("hits", 1.0).expect("a counter");
    let sampled = statsd.counter("sampled", 0.1).expect("a counter");
    let timing = statsd.timing("took", 1.0).expect("a timing");
    let dog = DogStatsd::new("bench.", to, options).expect("a DogStatsD backend");
    let tagged = dog
        .counter("hits", &["method", "success"], 1.0)
        .expect("a counter");

    let mut g = c.benchmark_group("push");
    g.bench_function("statsd_counter_add", |b| {
        b.iter(|| counter.add(black_box(1.0)))
    });
    g.bench_function("statsd_counter_add_sampled_0.1", |b| {
        b.iter(|| sampled.add(black_box(1.0)))
    });
    g.bench_function("statsd_timing_observe", |b| {
        b.iter(|| {
            timing.observe(black_box(12.5));
        });
        // Keep the pending list from growing without bound across samples.
        statsd.flush();
    });
    g.bench_function("dogstatsd_counter_with_labels_per_call", |b| {
        b.iter(|| {
            if let Ok(c) = tagged.with(black_box(&["sum", "true"])) {
                c.add(1.0);
            }
        })
    });
    g.finish();
}

criterion_group!(push_benches, benches);
criterion_main!(push_benches);

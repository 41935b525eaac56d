//! Per-request cost of a server span with propagation: the same kit HTTP server handling the
//! same request with B3 headers, without tracing (the baseline), with tracing that does not
//! sample (ratio 0 and an unsampled caller), and with tracing that samples (spans batched to
//! an exporter that drops them, so the network is not measured). The cost is the difference.

use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use kit_core::{Context, Error, endpoint_fn};
use kit_trace::ServerTracing;
use kit_transport_http::{Server, ServerOptions};
use opentelemetry::trace::TracerProvider;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, Sampler, SdkTracerProvider, SpanData, SpanExporter,
    span_processor_with_async_runtime::BatchSpanProcessor,
};

#[derive(Debug)]
struct Drop_;

impl SpanExporter for Drop_ {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

fn provider(ratio: f64) -> SdkTracerProvider {
    let batch = BatchSpanProcessor::builder(Drop_, opentelemetry_sdk::runtime::Tokio)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(1 << 16)
                .with_scheduled_delay(Duration::from_millis(50))
                .build(),
        )
        .build();
    SdkTracerProvider::builder()
        .with_span_processor(batch)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .build()
}

fn request(sampled: &'static str) -> Request<Full<Bytes>> {
    Request::post("/echo")
        .header("x-b3-traceid", "463ac35c9f6413ad48485a3953bb6124")
        .header("x-b3-spanid", "a2fb4a1d1a96d312")
        .header("x-b3-sampled", sampled)
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let server = |options: ServerOptions| {
        Server::new(
            endpoint_fn(|_cx: Context, body: Bytes| async move { Ok::<_, Error>(body) }),
            |_cx, r: &Request<Bytes>| Ok(r.body().clone()),
            |_cx, body: Bytes| Ok(Response::new(body)),
        )
        .options(options)
    };
    let unsampled = provider(0.0);
    let sampled = provider(1.0);
    let cases = [
        ("no tracing (baseline)", server(ServerOptions::new()), "0"),
        (
            "server span, unsampled",
            server(ServerTracing::new(unsampled.tracer("b")).http_options(ServerOptions::new())),
            "0",
        ),
        (
            "server span, sampled",
            server(ServerTracing::new(sampled.tracer("b")).http_options(ServerOptions::new())),
            "1",
        ),
    ];
    let mut group = c.benchmark_group("http server request");
    for (name, server, flag) in &cases {
        group.bench_function(*name, |b| {
            b.to_async(&runtime)
                .iter(|| async { std::hint::black_box(server.handle(request(flag)).await) })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Exporting spans to a Zipkin collector: Zipkin v2 JSON (`POST /api/v2/spans`) over hyper,
//! batched on the tokio runtime, and a one-call tracer setup.
//!
//! opentelemetry-zipkin is not used: it is deprecated upstream, its spans have an empty
//! `localEndpoint` (no service name) and a `parentId` of zeros on roots, and its default batch
//! processor panics with an async HTTP client outside a runtime thread (RFC 0006).

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
#[cfg(feature = "tracing")]
use opentelemetry_sdk::trace::SdkTracer;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, SdkTracerProvider, SpanData, SpanExporter,
    span_processor_with_async_runtime::BatchSpanProcessor,
};
use serde_json::{Map, Value as Json, json};

use crate::propagation::trace_id_hex;
use crate::sampling::CallerOrRatio;
use crate::span::{PEER_ADDRESS, PEER_PORT, PEER_SERVICE};

/// A span exporter posting Zipkin v2 JSON to a collector.
#[derive(Debug, Clone)]
pub struct ZipkinExporter {
    client: Client<HttpConnector, Full<Bytes>>,
    collector: Uri,
    service_name: String,
}

impl ZipkinExporter {
    /// Exports the spans of `service_name` to `collector`, the full URL of the collector's
    /// spans endpoint (`http://zipkin:9411/api/v2/spans`). Plain HTTP.
    pub fn new(service_name: impl Into<String>, collector: Uri) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        ZipkinExporter {
            client: Client::builder(TokioExecutor::new()).build(connector),
            collector,
            service_name: service_name.into(),
        }
    }

    /// The JSON array a batch is posted as.
    pub fn encode(&self, batch: &[SpanData]) -> Json {
        Json::Array(
            batch
                .iter()
                .map(|span| zipkin_span(&self.service_name, span))
                .collect(),
        )
    }
}

impl SpanExporter for ZipkinExporter {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let body = Bytes::from(self.encode(&batch).to_string());
        let request = Request::post(self.collector.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body));
        let client = self.client.clone();
        async move {
            let request = request.map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?;
            let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
                .await
                .map_err(|_| OTelSdkError::Timeout(Duration::from_secs(10)))?
                .map_err(|e| {
                    OTelSdkError::InternalFailure(format!("posting spans to Zipkin: {e}"))
                })?;
            if response.status().is_success() {
                Ok(())
            } else {
                Err(OTelSdkError::InternalFailure(format!(
                    "the Zipkin collector answered {}",
                    response.status()
                )))
            }
        }
    }
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.as_str().to_owned(),
        other => other.to_string(),
    }
}

/// One span in Zipkin v2's model.
fn zipkin_span(service_name: &str, span: &SpanData) -> Json {
    let mut out = Map::new();
    let cx = &span.span_context;
    out.insert("traceId".into(), trace_id_hex(cx.trace_id()).into());
    out.insert("id".into(), format!("{:016x}", cx.span_id()).into());
    // A root span has no parentId at all (not zeros).
    if span.parent_span_id != SpanId::INVALID {
        out.insert(
            "parentId".into(),
            format!("{:016x}", span.parent_span_id).into(),
        );
    }
    let kind = match span.span_kind {
        SpanKind::Server => Some("SERVER"),
        SpanKind::Client => Some("CLIENT"),
        SpanKind::Producer => Some("PRODUCER"),
        SpanKind::Consumer => Some("CONSUMER"),
        SpanKind::Internal => None,
    };
    if let Some(kind) = kind {
        out.insert("kind".into(), kind.into());
    }
    // Zipkin's names are lower-case lookup labels.
    out.insert("name".into(), span.name.to_lowercase().into());
    let start = micros(span.start_time);
    out.insert("timestamp".into(), start.into());
    // Zipkin's duration is at least 1 µs.
    out.insert(
        "duration".into(),
        micros(span.end_time).saturating_sub(start).max(1).into(),
    );
    out.insert(
        "localEndpoint".into(),
        json!({ "serviceName": service_name }),
    );

    let mut tags = Map::new();
    let mut remote = Map::new();
    for kv in &span.attributes {
        match kv.key.as_str() {
            PEER_ADDRESS => match text(&kv.value).parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => {
                    remote.insert("ipv4".into(), ip.to_string().into());
                }
                Ok(IpAddr::V6(ip)) => {
                    remote.insert("ipv6".into(), ip.to_string().into());
                }
                Err(_) => {
                    tags.insert(PEER_ADDRESS.into(), text(&kv.value).into());
                }
            },
            PEER_PORT => {
                // Zipkin refuses port 0.
                if let Ok(port @ 1..) = text(&kv.value).parse::<u16>() {
                    remote.insert("port".into(), port.into());
                }
            }
            PEER_SERVICE => {
                remote.insert("serviceName".into(), text(&kv.value).into());
            }
            key => {
                tags.insert(key.into(), text(&kv.value).into());
            }
        }
    }
    if let Status::Error { description } = &span.status {
        let message = if description.is_empty() {
            "true".to_owned()
        } else {
            description.to_string()
        };
        tags.insert("error".into(), message.into());
    }
    if !remote.is_empty() {
        out.insert("remoteEndpoint".into(), Json::Object(remote));
    }
    if !tags.is_empty() {
        out.insert("tags".into(), Json::Object(tags));
    }
    let annotations: Vec<Json> = span
        .events
        .iter()
        .map(|event| json!({ "timestamp": micros(event.timestamp), "value": event.name.to_string() }))
        .collect();
    if !annotations.is_empty() {
        out.insert("annotations".into(), annotations.into());
    }
    Json::Object(out)
}

/// A tracer provider exporting to Zipkin; [`ZipkinTracing::shutdown`] flushes what is buffered.
#[derive(Debug)]
pub struct ZipkinTracing {
    // Taken by `shutdown`; a `ZipkinTracing` dropped without it shuts down in `Drop`.
    provider: Option<SdkTracerProvider>,
}

impl ZipkinTracing {
    /// Sets up tracing for `service_name`: spans are sampled at `sampling_ratio` (0.0 to 1.0)
    /// for new traces, as the caller decided for continued ones (at the ratio when the caller
    /// deferred the decision or is not trusted with it: [`Propagation::trust_sampling`](crate::Propagation::trust_sampling)), batched on the tokio
    /// runtime (every second, or at 512 spans), and posted to `collector`
    /// (`http://zipkin:9411/api/v2/spans`). Call it within a tokio runtime.
    pub fn new(service_name: &str, collector: Uri, sampling_ratio: f64) -> ZipkinTracing {
        let exporter = ZipkinExporter::new(service_name, collector);
        let batch = BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_scheduled_delay(Duration::from_secs(1))
                    .with_max_export_batch_size(512)
                    .build(),
            )
            .build();
        let sampler = CallerOrRatio::new(sampling_ratio);
        ZipkinTracing {
            provider: Some(
                SdkTracerProvider::builder()
                    .with_span_processor(batch)
                    .with_sampler(sampler)
                    .build(),
            ),
        }
    }

    /// The provider, for tracers (`provider().tracer("name")`).
    pub fn provider(&self) -> &SdkTracerProvider {
        match &self.provider {
            Some(provider) => provider,
            None => unreachable!("the provider is only taken by shutdown, which consumes self"),
        }
    }

    /// A `tracing_subscriber` layer (feature `tracing`) that turns spans opened through the
    /// `tracing` facade (`#[tracing::instrument]`, `info_span!`) into spans of this provider:
    /// inside an endpoint that [`Tracing`](crate::Tracing) wraps, they are
    /// children of its span, in the same trace, exported to the same collector. Put it in the
    /// subscriber beside kit-log's `TracingLayer`, which goes on writing events as log lines.
    /// A `tracing` span that encloses the endpoint (tower-http's `TraceLayer`, say) takes
    /// precedence: the new spans become its children instead.
    /// tracing-opentelemetry's layer, with its defaults but no `tracing-log` and no metrics.
    #[cfg(feature = "tracing")]
    pub fn tracing_layer<S>(&self) -> tracing_opentelemetry::OpenTelemetryLayer<S, SdkTracer>
    where
        S: tracing_core::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
    {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(self.provider().tracer("tracing"))
    }

    /// Exports every finished span still buffered, then stops. Runs the SDK's blocking shutdown
    /// off the async worker, so it is safe on any tokio runtime.
    pub async fn shutdown(mut self) -> Result<(), OTelSdkError> {
        let Some(provider) = self.provider.take() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || provider.shutdown())
            .await
            .map_err(|e| OTelSdkError::InternalFailure(e.to_string()))?
    }
}

impl Drop for ZipkinTracing {
    /// The SDK's shutdown blocks on the batch task; run on an async worker (a current-thread
    /// runtime above all) it would wait for itself. Dropped without `shutdown`, the provider
    /// is shut down on a thread of its own, which the drop does not wait for.
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = std::thread::Builder::new()
                .name("kit-trace-shutdown".into())
                .spawn(move || provider.shutdown());
        }
    }
}

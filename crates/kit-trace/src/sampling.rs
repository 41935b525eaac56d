//! Who decides whether a trace is sampled: the caller, when it decided and is trusted to;
//! kit's ratio otherwise (a new trace, a caller that deferred the decision, or one not
//! trusted with it).
//!
//! OpenTelemetry's parent-based sampler follows every remote parent's flag, so a B3 caller that
//! deferred the decision (no sampled flag: "you decide") was never sampled, and any client
//! could force sampling and export (`x-b3-flags: 1`) on a public edge. Extraction marks such a
//! parent with `DEFERRED`, a flag bit of kit's own that never leaves the process (a child's
//! flags are the sampler's decision, not its parent's bits), and this sampler applies the ratio
//! to it, on the caller's trace id, so the trace stays one.

use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

use crate::propagation::DEFERRED;

/// The sampler of [`ZipkinTracing::new`](crate::ZipkinTracing::new).
#[derive(Clone, Debug)]
pub(crate) struct CallerOrRatio {
    ratio: Sampler,
}

impl CallerOrRatio {
    /// Samples new and deferred traces at `ratio` (0.0 to 1.0).
    pub(crate) fn new(ratio: f64) -> Self {
        CallerOrRatio {
            ratio: Sampler::TraceIdRatioBased(ratio.clamp(0.0, 1.0)),
        }
    }
}

impl ShouldSample for CallerOrRatio {
    fn should_sample(
        &self,
        parent: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let parent = parent
            .filter(|cx| cx.has_active_span())
            .map(|cx| cx.span().span_context().clone());
        let decided = parent
            .as_ref()
            .filter(|p| !(p.is_remote() && p.trace_flags().to_u8() & DEFERRED.to_u8() != 0));
        let decision = match decided {
            Some(parent) if parent.is_sampled() => SamplingDecision::RecordAndSample,
            Some(_) => SamplingDecision::Drop,
            None => {
                self.ratio
                    .should_sample(None, trace_id, name, kind, attributes, links)
                    .decision
            }
        };
        SamplingResult {
            decision,
            attributes: Vec::new(),
            trace_state: parent.map_or_else(TraceState::default, |p| p.trace_state().clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Propagation;
    use http::{HeaderMap, HeaderName, HeaderValue};
    use opentelemetry::trace::{Span as _, Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::SdkTracerProvider;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    /// Whether a server span continuing `pairs` is sampled, and its trace id.
    fn server_span(
        ratio: f64,
        trust: bool,
        pairs: &[(&'static str, &'static str)],
    ) -> (bool, String) {
        let provider = SdkTracerProvider::builder()
            .with_sampler(CallerOrRatio::new(ratio))
            .build();
        let tracer = provider.tracer("test");
        let caller = Propagation::default()
            .trust_sampling(trust)
            .extract(&headers(pairs))
            .expect("a well-formed context");
        let parent = Context::new().with_remote_span_context(caller.span_context);
        let span = tracer.start_with_context("server", &parent);
        let cx = span.span_context().clone();
        (cx.is_sampled(), format!("{:032x}", cx.trace_id()))
    }

    const TRACE: &str = "0000000000000000463ac35c9f6413ad";
    const B3_IDS: [(&str, &str); 2] = [
        ("x-b3-traceid", "463ac35c9f6413ad"),
        ("x-b3-spanid", "a2fb4a1d1a96d312"),
    ];

    #[test]
    fn a_trusted_caller_decides_and_an_untrusted_one_cannot_force_sampling() {
        let forced = [B3_IDS[0], B3_IDS[1], ("x-b3-flags", "1")];
        let w3c = [(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )];
        for pairs in [&forced[..], &w3c[..]] {
            // Ratio 0: only the caller's decision can sample.
            assert!(server_span(0.0, true, pairs).0, "{pairs:?}");
            assert!(!server_span(0.0, false, pairs).0, "{pairs:?}");
        }
        // Not trusted, the decision is ours, and the trace stays the caller's.
        let refused = [B3_IDS[0], B3_IDS[1], ("x-b3-sampled", "0")];
        assert_eq!(server_span(1.0, false, &refused), (true, TRACE.to_owned()));
        assert_eq!(server_span(1.0, true, &refused), (false, TRACE.to_owned()));
    }

    #[test]
    fn a_deferred_decision_is_taken_at_the_ratio() {
        // B3 without a sampled flag: "you decide".
        assert_eq!(server_span(1.0, true, &B3_IDS), (true, TRACE.to_owned()));
        assert!(!server_span(0.0, true, &B3_IDS).0);
    }

    #[test]
    fn in_process_parents_are_followed_and_new_traces_take_the_ratio() {
        let provider = SdkTracerProvider::builder()
            .with_sampler(CallerOrRatio::new(0.0))
            .build();
        let tracer = provider.tracer("test");
        let root = tracer.start("root");
        assert!(!root.span_context().is_sampled());
        let sampled = SdkTracerProvider::builder()
            .with_sampler(CallerOrRatio::new(1.0))
            .build()
            .tracer("test")
            .start("root");
        assert!(sampled.span_context().is_sampled());
        // A local parent's decision holds, whatever the ratio.
        let local = Context::current_with_span(sampled);
        let child = tracer.start_with_context("child", &local);
        assert!(child.span_context().is_sampled());
    }
}

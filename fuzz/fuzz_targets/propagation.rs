//! Trace context extraction from any header values (W3C traceparent and tracestate, B3 single
//! and multi): a context or none, never a panic; and what is extracted is injected and read
//! back the same.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use kit_trace::Propagation;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = [
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
];

fuzz_target!(|data: &[u8]| {
    // The input is the header values, separated by 0xff.
    let mut headers = HeaderMap::new();
    for (name, value) in NAMES.iter().zip(data.split(|b| *b == 0xff)) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    for trust in [true, false] {
        let propagation = Propagation::default().trust_sampling(trust);
        if let Some(extracted) = propagation.extract(&headers) {
            let mut out = HeaderMap::new();
            propagation.inject(&extracted.span_context, &mut out);
            let again = propagation.extract(&out).expect("what we write, we read");
            assert_eq!(
                again.span_context.trace_id(),
                extracted.span_context.trace_id()
            );
            assert_eq!(
                again.span_context.span_id(),
                extracted.span_context.span_id()
            );
        }
    }
});

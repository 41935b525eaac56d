//! B3 and W3C trace context: what peers send is read, what we write is what they read, and
//! hostile headers are ignored.

use http::{HeaderMap, HeaderValue};
use kit_trace::{Format, Propagation};
use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};
use opentelemetry::{SpanId, TraceId};

/// Header pairs as a test writes them.
type Headers = Vec<(&'static str, String)>;

const TRACE: &str = "463ac35c9f6413ad48485a3953bb6124";
const TRACE64: &str = "48485a3953bb6124";
const SPAN: &str = "a2fb4a1d1a96d312";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_str(value).unwrap());
    }
    map
}

fn ids(trace: &str) -> (TraceId, SpanId) {
    (
        TraceId::from_bytes(u128::from_str_radix(trace, 16).unwrap().to_be_bytes()),
        SpanId::from_bytes(u64::from_str_radix(SPAN, 16).unwrap().to_be_bytes()),
    )
}

#[test]
fn every_format_is_read() {
    let p = Propagation::default();
    let cases: Vec<(Headers, &str, Option<bool>)> = vec![
        (
            vec![("traceparent", format!("00-{TRACE}-{SPAN}-01"))],
            TRACE,
            Some(true),
        ),
        (
            vec![("traceparent", format!("00-{TRACE}-{SPAN}-00"))],
            TRACE,
            Some(false),
        ),
        // A later version may carry more fields.
        (
            vec![("traceparent", format!("01-{TRACE}-{SPAN}-01-extra"))],
            TRACE,
            Some(true),
        ),
        (vec![("b3", format!("{TRACE}-{SPAN}-1"))], TRACE, Some(true)),
        (
            vec![("b3", format!("{TRACE64}-{SPAN}-0-{SPAN}"))],
            TRACE64,
            Some(false),
        ),
        (vec![("b3", format!("{TRACE}-{SPAN}-d"))], TRACE, Some(true)),
        (vec![("b3", format!("{TRACE}-{SPAN}"))], TRACE, None),
        (
            vec![
                ("x-b3-traceid", TRACE64.into()),
                ("x-b3-spanid", SPAN.into()),
                ("x-b3-sampled", "1".into()),
            ],
            TRACE64,
            Some(true),
        ),
        (
            vec![
                ("X-B3-TraceId", TRACE.into()),
                ("X-B3-SpanId", SPAN.into()),
                ("X-B3-Flags", "1".into()),
            ],
            TRACE,
            Some(true),
        ),
        (
            vec![("x-b3-traceid", TRACE.into()), ("x-b3-spanid", SPAN.into())],
            TRACE,
            None,
        ),
        (
            vec![
                ("x-b3-traceid", TRACE.into()),
                ("x-b3-spanid", SPAN.into()),
                ("x-b3-sampled", "true".into()),
            ],
            TRACE,
            Some(true),
        ),
    ];
    for (pairs, trace, sampled) in cases {
        let pairs: Vec<(&'static str, &str)> =
            pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let got = p
            .extract(&headers(&pairs))
            .unwrap_or_else(|| panic!("{pairs:?}"));
        let (trace_id, span_id) = ids(trace);
        assert_eq!(got.span_context.trace_id(), trace_id, "{pairs:?}");
        assert_eq!(got.span_context.span_id(), span_id, "{pairs:?}");
        assert!(got.span_context.is_remote());
        assert_eq!(got.sampled, sampled, "{pairs:?}");
        assert_eq!(
            got.span_context.is_sampled(),
            sampled == Some(true),
            "{pairs:?}"
        );
    }
}

#[test]
fn w3c_wins_over_b3_and_tracestate_travels() {
    let other = "0af7651916cd43dd8448eb211c80319c";
    let got = Propagation::default()
        .extract(&headers(&[
            ("x-b3-traceid", other),
            ("x-b3-spanid", SPAN),
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("tracestate", "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"),
        ]))
        .unwrap();
    assert_eq!(got.span_context.trace_id(), ids(TRACE).0);
    assert_eq!(
        got.span_context.trace_state().get("congo"),
        Some("t61rcWkgMzE")
    );
    // A broken tracestate is dropped; the traceparent still counts.
    let got = Propagation::default()
        .extract(&headers(&[
            ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
            ("tracestate", "not a list entry"),
        ]))
        .unwrap();
    assert_eq!(got.span_context.trace_state().header(), "");
}

#[test]
fn malformed_or_hostile_headers_are_ignored() {
    let huge = "a".repeat(100_000);
    let bad: Vec<Headers> = vec![
        vec![("traceparent", format!("00-{TRACE}-{SPAN}"))],
        vec![("traceparent", format!("00-{TRACE}-{SPAN}-01-extra"))],
        vec![("traceparent", format!("ff-{TRACE}-{SPAN}-01"))],
        vec![("traceparent", format!("0-{TRACE}-{SPAN}-01"))],
        vec![(
            "traceparent",
            format!("00-{}-{SPAN}-01", TRACE.to_uppercase()),
        )],
        vec![("traceparent", format!("00-{}-{SPAN}-01", "0".repeat(32)))],
        vec![("traceparent", format!("00-{TRACE}-{}-01", "0".repeat(16)))],
        vec![("traceparent", format!("00-{TRACE}x-{SPAN}-01"))],
        vec![("traceparent", format!("00-{TRACE}-{SPAN}-1"))],
        vec![("traceparent", format!("00-+{}-{SPAN}-01", &TRACE[1..]))],
        vec![("traceparent", format!("+0-{TRACE}-{SPAN}-01"))],
        vec![("traceparent", format!("00-{TRACE}-{SPAN}-+1"))],
        vec![("traceparent", format!("00-{TRACE}-{SPAN}-0G"))],
        vec![("traceparent", format!("00-{TRACE}-{SPAN}-{huge}"))],
        vec![("traceparent", huge.clone())],
        vec![("b3", format!("{TRACE}-{SPAN}-2"))],
        vec![("b3", format!("{TRACE}-{SPAN}-true"))],
        vec![("b3", format!("{}-{SPAN}-1", &TRACE[..20]))],
        vec![("b3", format!("{TRACE}-{SPAN}-1-zz"))],
        vec![("b3", format!("{TRACE}-{SPAN}-1-{SPAN}-more"))],
        vec![("b3", format!("{TRACE}--1"))],
        vec![("b3", "1".into())],
        vec![("b3", format!("{TRACE}-{huge}"))],
        vec![("x-b3-traceid", TRACE.into())],
        vec![("x-b3-traceid", "xyz".into()), ("x-b3-spanid", SPAN.into())],
        vec![
            ("x-b3-traceid", TRACE.into()),
            ("x-b3-spanid", format!("{SPAN}0")),
        ],
        vec![
            ("x-b3-traceid", TRACE.into()),
            ("x-b3-spanid", SPAN.into()),
            ("x-b3-sampled", "maybe".into()),
        ],
        vec![
            ("x-b3-traceid", TRACE.into()),
            ("x-b3-spanid", SPAN.into()),
            ("x-b3-parentspanid", "-1".into()),
        ],
        vec![("x-b3-traceid", huge.clone()), ("x-b3-spanid", SPAN.into())],
    ];
    let p = Propagation::default();
    for pairs in bad {
        let pairs: Vec<(&'static str, &str)> =
            pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        assert_eq!(
            p.extract(&headers(&pairs)),
            None,
            "{:?}",
            &pairs[0].1[..pairs[0].1.len().min(80)]
        );
    }
    // Bytes that are not text.
    let mut map = HeaderMap::new();
    map.insert("b3", HeaderValue::from_bytes(b"\xff\xfe-1").unwrap());
    assert_eq!(p.extract(&map), None);
    assert_eq!(p.extract(&HeaderMap::new()), None);
}

fn context(trace: &str, sampled: bool) -> SpanContext {
    let (trace_id, span_id) = ids(trace);
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::NOT_SAMPLED
    };
    let state = "rojo=00f067aa0ba902b7".parse::<TraceState>().unwrap();
    SpanContext::new(trace_id, span_id, flags, false, state)
}

#[test]
fn what_is_written_is_what_peers_read() {
    let mut out = HeaderMap::new();
    Propagation::default().inject(&context(TRACE, true), &mut out);
    assert_eq!(out["x-b3-traceid"], TRACE);
    assert_eq!(out["x-b3-spanid"], SPAN);
    assert_eq!(out["x-b3-sampled"], "1");
    assert_eq!(out["traceparent"], format!("00-{TRACE}-{SPAN}-01"));
    assert_eq!(out["tracestate"], "rojo=00f067aa0ba902b7");
    assert!(!out.contains_key("b3"));

    // A 64-bit trace id (from a Zipkin peer) is written back as Zipkin wrote it.
    let mut out = HeaderMap::new();
    Propagation::inject_only(&[Format::B3Single]).inject(&context(TRACE64, false), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out["b3"], format!("{TRACE64}-{SPAN}-0"));

    // Round trips through every format.
    for format in [Format::W3C, Format::B3Single, Format::B3Multi] {
        for sampled in [true, false] {
            let sent = context(TRACE, sampled);
            let mut out = HeaderMap::new();
            Propagation::inject_only(&[format]).inject(&sent, &mut out);
            let got = Propagation::default().extract(&out).unwrap();
            assert_eq!(got.span_context.trace_id(), sent.trace_id(), "{format:?}");
            assert_eq!(got.span_context.span_id(), sent.span_id(), "{format:?}");
            assert_eq!(got.sampled, Some(sampled), "{format:?}");
        }
    }
    // Injecting replaces every trace header that was there.
    let mut out = headers(&[
        ("b3", "1"),
        ("tracestate", "old=1"),
        ("x-b3-parentspanid", SPAN),
    ]);
    Propagation::inject_only(&[Format::B3Multi]).inject(&context(TRACE, true), &mut out);
    assert!(!out.contains_key("b3") && !out.contains_key("tracestate"));
    assert!(!out.contains_key("x-b3-parentspanid"));
    assert_eq!(out["x-b3-spanid"], SPAN);
    // An invalid context writes nothing.
    let mut out = HeaderMap::new();
    Propagation::default().inject(&SpanContext::empty_context(), &mut out);
    assert!(out.is_empty());
}

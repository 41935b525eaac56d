//! Trace context on the wire: B3 (single `b3` header and multi `X-B3-*` headers) and W3C
//! Trace Context (`traceparent`, `tracestate`), read from and written to HTTP headers (gRPC
//! metadata is HTTP/2 headers: `tonic::metadata::MetadataMap::as_ref` is a `HeaderMap`).
//!
//! Every format is accepted on extract; which ones are written on inject is configured. Input
//! is untrusted: anything malformed (bad hex, wrong lengths, all-zero ids, oversized values,
//! non-ASCII) is ignored as if absent, so the request starts a new trace and still succeeds.

use std::str::FromStr;

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};
use opentelemetry::{SpanId, TraceId};

/// On a remote parent: the caller's sampling decision is ours to make (a flag bit of kit's own,
/// read by the `zipkin` feature's sampler; never written to the wire).
pub(crate) const DEFERRED: TraceFlags = TraceFlags::new(0x80);

/// A format of trace context headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// W3C Trace Context: `traceparent` and `tracestate`.
    W3C,
    /// B3 single header: `b3: {trace}-{span}-{sampled}`.
    B3Single,
    /// B3 multiple headers: `X-B3-TraceId`, `X-B3-SpanId`, `X-B3-Sampled`.
    B3Multi,
}

/// The trace context a request arrived with.
#[derive(Clone, Debug, PartialEq)]
pub struct Extracted {
    /// The caller's span: the parent of the span the server starts. `is_remote` is set; its
    /// flags say sampled when the caller decided so.
    pub span_context: SpanContext,
    /// The caller's sampling decision, or `None` when the decision is ours: the caller left it
    /// to us (B3 allows that; W3C always decides), or is not trusted with it
    /// ([`Propagation::trust_sampling`]). Kit's sampler then takes it at its ratio.
    pub sampled: Option<bool>,
}

/// Which formats are written on inject (all are read on extract), and whether the caller's
/// sampling decision is followed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Propagation {
    inject: Vec<Format>,
    trust_sampling: bool,
}

impl Default for Propagation {
    /// Writes B3 multi headers (what Zipkin-instrumented services read) and W3C Trace Context
    /// (what OpenTelemetry-instrumented ones read); follows the caller's sampling decision.
    fn default() -> Self {
        Propagation {
            inject: vec![Format::B3Multi, Format::W3C],
            trust_sampling: true,
        }
    }
}

// The longest header value considered; real ones are under 100 bytes (tracestate under 512).
const MAX_VALUE: usize = 512;

// The names inject writes, made once.
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
static B3: HeaderName = HeaderName::from_static("b3");
static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");

impl Propagation {
    /// Writes exactly `formats` on inject (in that order).
    pub fn inject_only(formats: &[Format]) -> Self {
        Propagation {
            inject: formats.to_vec(),
            trust_sampling: true,
        }
    }

    /// Whether a caller's sampling decision is followed (default yes, as inside one system).
    /// On a public edge, turn it off: any client could otherwise make every request sampled
    /// and exported (`x-b3-flags: 1`, `x-b3-sampled: 1`, a W3C sampled flag), a cost it chooses
    /// for us. Off, the trace is still continued (same trace id, the caller's span as parent),
    /// and sampled at kit's own ratio.
    pub fn trust_sampling(mut self, trust: bool) -> Self {
        self.trust_sampling = trust;
        self
    }

    /// The trace context in `headers`: W3C first, then B3 single, then B3 multi; the first
    /// well-formed one wins. `None` when there is none, or none that is well formed.
    pub fn extract(&self, headers: &HeaderMap) -> Option<Extracted> {
        let found = Found::in_headers(headers);
        let extracted = extract_w3c(&found)
            .or_else(|| extract_b3_single(&found))
            .or_else(|| extract_b3_multi(&found))?;
        Some(match self.trust_sampling {
            true => extracted,
            false => {
                let cx = &extracted.span_context;
                remote(cx.trace_id(), cx.span_id(), None, cx.trace_state().clone())
            }
        })
    }

    /// Writes `span_context` to `headers` in each configured format, replacing what was there.
    /// An invalid context writes nothing.
    pub fn inject(&self, span_context: &SpanContext, headers: &mut HeaderMap) {
        if !span_context.is_valid() {
            return;
        }
        // What was there goes, so that a forwarded request does not carry a mixed context.
        for name in [
            "traceparent",
            "tracestate",
            "b3",
            "x-b3-traceid",
            "x-b3-spanid",
            "x-b3-parentspanid",
            "x-b3-sampled",
            "x-b3-flags",
        ] {
            headers.remove(name);
        }
        let trace_id = trace_id_hex(span_context.trace_id());
        let span_id = format!("{:016x}", span_context.span_id());
        let sampled = span_context.is_sampled();
        let mut set = |name: &HeaderName, value: String| {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name.clone(), value);
            }
        };
        for format in &self.inject {
            match format {
                Format::W3C => {
                    set(
                        &TRACEPARENT,
                        format!(
                            "00-{:032x}-{span_id}-{:02x}",
                            span_context.trace_id(),
                            span_context.trace_flags().to_u8() & 1
                        ),
                    );
                    let state = span_context.trace_state().header();
                    if !state.is_empty() {
                        set(&TRACESTATE, state);
                    }
                }
                Format::B3Single => {
                    set(&B3, format!("{trace_id}-{span_id}-{}", u8::from(sampled)));
                }
                Format::B3Multi => {
                    set(&B3_TRACE_ID, trace_id.clone());
                    set(&B3_SPAN_ID, span_id.clone());
                    set(&B3_SAMPLED, if sampled { "1" } else { "0" }.to_owned());
                }
            }
        }
    }
}

/// A trace id as B3 and Zipkin write it: 16 hex digits when its high half is zero (a 64-bit
/// id, as Zipkin-instrumented peers make), else 32.
pub fn trace_id_hex(trace_id: TraceId) -> String {
    let bytes = trace_id.to_bytes();
    if bytes[..8] == [0; 8] {
        format!(
            "{:016x}",
            u64::from_be_bytes(bytes[8..].try_into().unwrap_or_default())
        )
    } else {
        format!("{trace_id:032x}")
    }
}

/// The trace headers of a request, found in one pass over its headers: cheaper than a map
/// lookup per name, of which an extract would need up to eight. The first of repeated
/// headers counts, as `HeaderMap::get` would have it.
#[derive(Default)]
struct Found<'a> {
    traceparent: Option<&'a HeaderValue>,
    tracestate: Option<&'a HeaderValue>,
    b3: Option<&'a HeaderValue>,
    trace_id: Option<&'a HeaderValue>,
    span_id: Option<&'a HeaderValue>,
    parent_span_id: Option<&'a HeaderValue>,
    sampled: Option<&'a HeaderValue>,
    flags: Option<&'a HeaderValue>,
}

impl<'a> Found<'a> {
    fn in_headers(headers: &'a HeaderMap) -> Self {
        let mut found = Found::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "traceparent" => &mut found.traceparent,
                "tracestate" => &mut found.tracestate,
                "b3" => &mut found.b3,
                "x-b3-traceid" => &mut found.trace_id,
                "x-b3-spanid" => &mut found.span_id,
                "x-b3-parentspanid" => &mut found.parent_span_id,
                "x-b3-sampled" => &mut found.sampled,
                "x-b3-flags" => &mut found.flags,
                _ => continue,
            };
            slot.get_or_insert(value);
        }
        found
    }
}

/// A header's text, if it is short enough and ASCII.
fn text(value: Option<&HeaderValue>) -> Option<&str> {
    let value = value?;
    if value.len() > MAX_VALUE {
        return None;
    }
    value.to_str().ok().map(str::trim)
}

/// `len` lowercase hex digits, not all zero. One pass that checks and converts (a check then
/// `from_str_radix` costs twice, and the latter alone would accept a `+`).
fn hex_id(s: &str, len: usize) -> Option<u128> {
    if s.len() != len {
        return None;
    }
    let mut value: u128 = 0;
    for b in s.bytes() {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        value = (value << 4) | u128::from(digit);
    }
    (value != 0).then_some(value)
}

/// Two lowercase hex digits, zero included.
fn hex_byte(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [0x30, 0x30] => Some(0),
        _ => hex_id(s, 2).map(|v| v as u8),
    }
}

fn trace_id(s: &str) -> Option<TraceId> {
    let len = if s.len() == 16 { 16 } else { 32 };
    hex_id(s, len).map(|v| TraceId::from_bytes(v.to_be_bytes()))
}

fn span_id(s: &str) -> Option<SpanId> {
    hex_id(s, 16).map(|v| SpanId::from_bytes((v as u64).to_be_bytes()))
}

fn remote(
    trace_id: TraceId,
    span_id: SpanId,
    sampled: Option<bool>,
    state: TraceState,
) -> Extracted {
    let flags = match sampled {
        Some(true) => TraceFlags::SAMPLED,
        Some(false) => TraceFlags::NOT_SAMPLED,
        None => DEFERRED,
    };
    Extracted {
        span_context: SpanContext::new(trace_id, span_id, flags, true, state),
        sampled,
    }
}

fn extract_w3c(found: &Found<'_>) -> Option<Extracted> {
    let value = text(found.traceparent)?;
    let mut parts = value.splitn(5, '-');
    let version = parts.next()?;
    let (trace, parent, flags) = (parts.next()?, parts.next()?, parts.next()?);
    let rest = parts.next();
    // Version 00 has exactly four fields; a later version may add more, after a dash.
    // Two lowercase hex digits (hex_id also refuses the `+` that from_str_radix would take).
    let version = hex_byte(version)?;
    if version == 0xff || (version == 0 && rest.is_some()) {
        return None;
    }
    let trace_id = TraceId::from_bytes(hex_id(trace, 32)?.to_be_bytes());
    let span_id = span_id(parent)?;
    let flags = hex_byte(flags)?;
    let state = text(found.tracestate)
        .and_then(|s| TraceState::from_str(s).ok())
        .unwrap_or_default();
    Some(remote(trace_id, span_id, Some(flags & 1 == 1), state))
}

fn b3_sampled(s: &str) -> Option<Option<bool>> {
    match s {
        // "d" is debug: sampled, and forced.
        "1" | "d" | "true" => Some(Some(true)),
        "0" | "false" => Some(Some(false)),
        _ => None,
    }
}

fn extract_b3_single(found: &Found<'_>) -> Option<Extracted> {
    let value = text(found.b3)?;
    let mut parts = value.split('-');
    let (trace, span) = (parts.next()?, parts.next()?);
    let sampled = match parts.next() {
        Some(s) => b3_sampled(s).filter(|_| s != "true" && s != "false")?,
        None => None,
    };
    if let Some(parent) = parts.next() {
        span_id(parent)?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(remote(
        trace_id(trace)?,
        span_id(span)?,
        sampled,
        TraceState::default(),
    ))
}

fn extract_b3_multi(found: &Found<'_>) -> Option<Extracted> {
    let trace_id = trace_id(text(found.trace_id)?)?;
    let span_id = span_id(text(found.span_id)?)?;
    if found.parent_span_id.is_some() {
        self::span_id(text(found.parent_span_id)?)?;
    }
    let debug = text(found.flags) == Some("1");
    let sampled = match text(found.sampled) {
        _ if debug => Some(true),
        Some(s) => b3_sampled(s).filter(|_| s != "d")?,
        None if found.sampled.is_some() => return None,
        None => None,
    };
    Some(remote(trace_id, span_id, sampled, TraceState::default()))
}

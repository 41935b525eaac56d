//! What both encoders share: collecting a record's pairs in go-kit order, one write per record.
//!
//! slog hands a serializer the record's pairs and the logger's context newest first
//! (`o!("a" => 1, "b" => 2)` arrives as `b`, `a`). go-kit writes them in the order they were
//! given, context before the call's own pairs. So each pair is encoded once into a scratch
//! buffer and its span remembered; the line is then assembled from the spans in reverse. The
//! buffers live in a thread-local and are reused, so a record costs no allocation once they have
//! grown to fit.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, Write};
use std::sync::{Mutex, PoisonError};

use slog::{Drain, KV, Key, OwnedKVList, Record, Serializer};

use crate::level::{Level, NO_LEVEL_TAG};

/// One value as slog hands it over, before encoding.
pub enum Value<'a> {
    Str(&'a str),
    Args(&'a fmt::Arguments<'a>),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    Null,
}

/// Writes the values that look the same in every format: integers, booleans and `null`.
/// Text and floats are each format's own business.
pub(crate) fn write_plain(out: &mut Vec<u8>, value: Value<'_>) {
    match value {
        Value::I64(n) => {
            let _ = write!(out, "{n}");
        }
        Value::U64(n) => {
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Null => out.extend_from_slice(b"null"),
        // Text and floats never reach here: each format handles them before falling back.
        Value::Str(_) | Value::Args(_) | Value::F64(_) => {}
    }
}

/// A line format (logfmt or JSON): how a pair, a line's start and its end are written.
///
/// Sealed: the formats are kit-log's own, picked through [`Logfmt`](crate::Logfmt) and
/// [`Json`](crate::Json).
pub trait Format: sealed::Sealed + Send + Sync + 'static {
    /// Appends the encoded pair `key`/`value` to `out`; `scratch` is free working space.
    #[doc(hidden)]
    fn pair(out: &mut Vec<u8>, scratch: &mut Vec<u8>, key: &str, value: Value<'_>);
    /// Starts a line.
    #[doc(hidden)]
    fn begin(out: &mut Vec<u8>);
    /// Separates two pairs.
    #[doc(hidden)]
    const SEPARATOR: u8;
    /// Ends a line, newline included.
    #[doc(hidden)]
    fn end(out: &mut Vec<u8>);
    /// The `level` pair of each [`Level`], encoded (the same few bytes start nearly every line,
    /// so they are written whole rather than encoded each time).
    #[doc(hidden)]
    const LEVELS: [&'static str; 4];
}

#[derive(Default)]
struct Buffers {
    /// Encoded pairs, back to back.
    pairs: Vec<u8>,
    /// Where each pair lies in `pairs`, in the order slog gave them.
    spans: Vec<(usize, usize)>,
    scratch: Vec<u8>,
    line: Vec<u8>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::default());
}

struct Collector<'b, F> {
    bufs: &'b mut Buffers,
    _format: std::marker::PhantomData<F>,
}

impl<F: Format> Collector<'_, F> {
    // Inlined into each `emit_*` (with the format's `pair`): the calls cost as much as a
    // short pair's encoding.
    #[inline(always)]
    fn push(&mut self, key: Key, value: Value<'_>) -> slog::Result {
        let start = self.bufs.pairs.len();
        F::pair(&mut self.bufs.pairs, &mut self.bufs.scratch, key, value);
        self.bufs.spans.push((start, self.bufs.pairs.len()));
        Ok(())
    }
}

impl<F: Format> Serializer for Collector<'_, F> {
    fn emit_arguments(&mut self, key: Key, val: &fmt::Arguments<'_>) -> slog::Result {
        self.push(key, Value::Args(val))
    }
    fn emit_str(&mut self, key: Key, val: &str) -> slog::Result {
        self.push(key, Value::Str(val))
    }
    fn emit_char(&mut self, key: Key, val: char) -> slog::Result {
        let mut utf8 = [0; 4];
        self.push(key, Value::Str(val.encode_utf8(&mut utf8)))
    }
    fn emit_bool(&mut self, key: Key, val: bool) -> slog::Result {
        self.push(key, Value::Bool(val))
    }
    fn emit_none(&mut self, key: Key) -> slog::Result {
        self.push(key, Value::Null)
    }
    fn emit_unit(&mut self, key: Key) -> slog::Result {
        self.push(key, Value::Null)
    }
    fn emit_u8(&mut self, key: Key, val: u8) -> slog::Result {
        self.push(key, Value::U64(val.into()))
    }
    fn emit_u16(&mut self, key: Key, val: u16) -> slog::Result {
        self.push(key, Value::U64(val.into()))
    }
    fn emit_u32(&mut self, key: Key, val: u32) -> slog::Result {
        self.push(key, Value::U64(val.into()))
    }
    fn emit_u64(&mut self, key: Key, val: u64) -> slog::Result {
        self.push(key, Value::U64(val))
    }
    fn emit_usize(&mut self, key: Key, val: usize) -> slog::Result {
        self.push(key, Value::U64(val as u64))
    }
    fn emit_i8(&mut self, key: Key, val: i8) -> slog::Result {
        self.push(key, Value::I64(val.into()))
    }
    fn emit_i16(&mut self, key: Key, val: i16) -> slog::Result {
        self.push(key, Value::I64(val.into()))
    }
    fn emit_i32(&mut self, key: Key, val: i32) -> slog::Result {
        self.push(key, Value::I64(val.into()))
    }
    fn emit_i64(&mut self, key: Key, val: i64) -> slog::Result {
        self.push(key, Value::I64(val))
    }
    fn emit_isize(&mut self, key: Key, val: isize) -> slog::Result {
        self.push(key, Value::I64(val as i64))
    }
    fn emit_f32(&mut self, key: Key, val: f32) -> slog::Result {
        self.push(key, Value::F64(val.into()))
    }
    fn emit_f64(&mut self, key: Key, val: f64) -> slog::Result {
        self.push(key, Value::F64(val))
    }
}

/// Encodes `record` and `values` as one line of format `F` and hands it to `write` whole.
fn encode<F: Format, R>(
    bufs: &mut Buffers,
    record: &Record<'_>,
    values: &OwnedKVList,
    write: impl FnOnce(&[u8]) -> R,
) -> Result<R, slog::Error> {
    bufs.pairs.clear();
    bufs.spans.clear();
    bufs.line.clear();
    let mut collector = Collector::<F> {
        bufs,
        _format: std::marker::PhantomData,
    };
    record.kv().serialize(record, &mut collector)?;
    let record_pairs = collector.bufs.spans.len();
    values.serialize(record, &mut collector)?;

    let Buffers {
        pairs,
        spans,
        scratch,
        line,
    } = bufs;
    let (own, context) = spans.split_at(record_pairs);
    F::begin(line);
    let mut first = true;
    let mut sep = |line: &mut Vec<u8>| {
        if !std::mem::take(&mut first) {
            line.push(F::SEPARATOR);
        }
    };
    if record.tag() != NO_LEVEL_TAG {
        sep(line);
        line.extend_from_slice(F::LEVELS[Level::from(record.level()) as usize].as_bytes());
    }
    for &(start, end) in context.iter().rev() {
        sep(line);
        line.extend_from_slice(&pairs[start..end]);
    }
    let msg = record.msg();
    // An empty message (a record of pairs only, go-kit style) is left out.
    if msg.as_str() != Some("") {
        sep(line);
        F::pair(line, scratch, "msg", Value::Args(msg));
    }
    for &(start, end) in own.iter().rev() {
        sep(line);
        line.extend_from_slice(&pairs[start..end]);
    }
    F::end(line);
    Ok(write(line))
}

/// Runs `f` with this thread's value of `reused` (buffers kept from one record to the next), or
/// a fresh one if it is in use: a value being encoded that logs in turn.
pub(crate) fn with_reused<T: Default, R>(
    reused: &'static std::thread::LocalKey<RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    let mut f = Some(f);
    let done = reused.try_with(|cell| {
        cell.try_borrow_mut()
            .ok()
            .map(|mut value| (f.take().expect("called once"))(&mut value))
    });
    match (done, f) {
        (Ok(Some(out)), _) => out,
        (_, Some(f)) => f(&mut T::default()),
        (_, None) => unreachable!("the closure ran but returned nothing"),
    }
}

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// A slog drain that encodes each record as one line of format `F` and writes it to `W` with
/// one `write_all`; use it as [`Logfmt`](crate::Logfmt) or [`Json`](crate::Json).
///
/// The writer sits behind a mutex taken once per record, for the one write of the whole line:
/// records from concurrent threads never interleave. The line holds `level` first (unless the
/// record has no level), then the logger's context in the order it was added, then `msg`
/// (unless empty), then the record's own pairs in the order given.
pub struct Encoder<F, W> {
    writer: Mutex<W>,
    /// Set for a non-blocking writer, which takes whole lines from many threads at once: its
    /// lines skip the mutex (a second lock per record, contended between a service's threads).
    lines: Option<crate::non_blocking::Lines>,
    _format: std::marker::PhantomData<F>,
}

impl<F: Format, W: Write> Encoder<F, W> {
    /// Writes to `writer`.
    pub fn new(writer: W) -> Self {
        Encoder {
            writer: Mutex::new(writer),
            lines: None,
            _format: std::marker::PhantomData,
        }
    }

    /// Writes each line straight to `lines` instead of through the mutex.
    pub(crate) fn with_lines(mut self, lines: crate::non_blocking::Lines) -> Self {
        self.lines = Some(lines);
        self
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.writer
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl<F: Format, W: Write + Send + 'static> Drain for Encoder<F, W> {
    type Ok = ();
    type Err = io::Error;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> io::Result<()> {
        with_reused(&BUFFERS, |bufs| {
            encode::<F, _>(bufs, record, values, |line| {
                if let Some(lines) = &self.lines {
                    lines.push(line);
                    return Ok(());
                }
                // A panic while another record was written leaves at worst a partial line in
                // the writer; later records are still whole.
                let mut w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
                w.write_all(line)
            })
        })
        .map_err(|e| match e {
            slog::Error::Io(e) => e,
            other => io::Error::other(other.to_string()),
        })?
    }
}

/// Writes a float as the shortest text that reads back to the same `f64`, and non-finite ones
/// as `NaN`, `+Inf` and `-Inf` (JSON quotes those: it has no such numbers).
pub(crate) fn write_f64(out: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        // Debug, not Display: Display would write 1e300 as 301 digits.
        let _ = write!(out, "{f:?}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels_are_encoded_pairs<F: Format>() {
        for level in [Level::Debug, Level::Info, Level::Warn, Level::Error] {
            let mut pair = Vec::new();
            F::pair(
                &mut pair,
                &mut Vec::new(),
                "level",
                Value::Str(level.as_str()),
            );
            assert_eq!(F::LEVELS[level as usize].as_bytes(), pair, "{level:?}");
        }
    }

    #[test]
    fn each_formats_level_pairs_are_what_it_would_encode() {
        levels_are_encoded_pairs::<crate::logfmt::LogfmtFormat>();
        levels_are_encoded_pairs::<crate::json::JsonFormat>();
    }
}

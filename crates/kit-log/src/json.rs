//! The JSON encoder: one JSON object per line.
//!
//! Every line is valid JSON (RFC 8259) whatever the input: strings are escaped (`"`, `\`, and
//! control characters), non-finite floats become the strings `"NaN"`, `"+Inf"` and `"-Inf"`
//! (JSON has no such numbers), errors and formatted values become strings, absent values
//! `null`. A key that appears twice is written twice, in order; readers that keep one keep the
//! last.

use std::fmt;
use std::io::Write;

use crate::encode::{Encoder, Format, Value};

/// Writes records as JSON objects, one per line (go-kit's `NewJSONLogger`), one `write_all` per
/// record.
///
/// Members come in the same order as [`Logfmt`](crate::Logfmt)'s pairs: `level`, the logger's
/// context, `msg`, the record's own pairs.
///
/// ```
/// use slog::{warn, o, Drain, Logger};
/// use std::sync::{Arc, Mutex};
///
/// # #[derive(Clone, Default)] struct Shared(Arc<Mutex<Vec<u8>>>);
/// # impl std::io::Write for Shared {
/// #     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
/// #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// # }
/// let out = Shared::default();
/// let log = Logger::root(kit_log::Json::new(out.clone()).fuse(), o!("svc" => "add"));
/// warn!(log, "slow"; "took_ms" => 1200, "ratio" => f64::NAN);
/// assert_eq!(
///     String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
///     "{\"level\":\"warn\",\"svc\":\"add\",\"msg\":\"slow\",\"took_ms\":1200,\"ratio\":\"NaN\"}\n"
/// );
/// ```
pub type Json<W> = Encoder<JsonFormat, W>;

/// The Json line format; see [`Json`].
#[derive(Debug)]
pub struct JsonFormat;

impl crate::encode::sealed::Sealed for JsonFormat {}

impl Format for JsonFormat {
    const SEPARATOR: u8 = b',';
    const LEVELS: [&'static str; 4] = [
        r#""level":"debug""#,
        r#""level":"info""#,
        r#""level":"warn""#,
        r#""level":"error""#,
    ];

    fn begin(out: &mut Vec<u8>) {
        out.push(b'{');
    }

    fn end(out: &mut Vec<u8>) {
        out.extend_from_slice(b"}\n");
    }

    fn pair(out: &mut Vec<u8>, _scratch: &mut Vec<u8>, key: &str, value: Value<'_>) {
        write_str(out, key);
        out.push(b':');
        match value {
            Value::Str(s) => write_str(out, s),
            Value::Args(args) => match args.as_str() {
                Some(s) => write_str(out, s),
                None => {
                    out.push(b'"');
                    // Escapes as it writes: no intermediate string.
                    let _ = fmt::write(&mut Escaper(out), *args);
                    out.push(b'"');
                }
            },
            Value::F64(f) if f.is_finite() => crate::encode::write_f64(out, f),
            Value::F64(f) => {
                out.push(b'"');
                crate::encode::write_f64(out, f);
                out.push(b'"');
            }
            plain => crate::encode::write_plain(out, plain),
        }
    }
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        plain = i + 1;
    }
    out.extend_from_slice(&bytes[plain..]);
}

struct Escaper<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

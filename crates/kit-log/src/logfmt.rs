//! The logfmt encoder: `key=value` pairs separated by spaces, one record per line.
//!
//! Values are written bare unless a reader could misread them: a value that is empty or holds a
//! space, `=`, `"`, a control character or U+FFFD is quoted, with `\"`, `\\`, `\n`, `\r`, `\t`
//! and `\u00XX` escapes inside. Keys cannot be quoted in logfmt, so characters that would break
//! a key (space, `=`, `"`, control characters) become `_`, and an empty key becomes `_`.
//! Non-finite floats are `NaN`, `+Inf` and `-Inf`; an absent value is `null`.

use std::io::Write;

use crate::encode::{Encoder, Format, Value};

/// Writes records as logfmt lines (go-kit's `NewLogfmtLogger`), one `write_all` per record;
/// see [`Encoder`] for the order of the pairs.
///
/// ```
/// use slog::{info, o, Drain, Logger};
/// use std::sync::{Arc, Mutex};
///
/// # #[derive(Clone, Default)] struct Shared(Arc<Mutex<Vec<u8>>>);
/// # impl std::io::Write for Shared {
/// #     fn write(&mut self, b: &[u8]) -> std::io::Result<usize> { self.0.lock().unwrap().write(b) }
/// #     fn flush(&mut self) -> std::io::Result<()> { Ok(()) }
/// # }
/// let out = Shared::default();
/// let log = Logger::root(kit_log::Logfmt::new(out.clone()).fuse(), o!("svc" => "add"));
/// info!(log, "summed"; "a" => 1, "b" => "two words");
/// assert_eq!(
///     String::from_utf8(out.0.lock().unwrap().clone()).unwrap(),
///     "level=info svc=add msg=summed a=1 b=\"two words\"\n"
/// );
/// ```
pub type Logfmt<W> = Encoder<LogfmtFormat, W>;

/// The Logfmt line format; see [`Logfmt`].
#[derive(Debug)]
pub struct LogfmtFormat;

impl crate::encode::sealed::Sealed for LogfmtFormat {}

impl Format for LogfmtFormat {
    const SEPARATOR: u8 = b' ';
    const LEVELS: [&'static str; 4] = ["level=debug", "level=info", "level=warn", "level=error"];

    fn begin(_: &mut Vec<u8>) {}

    fn end(out: &mut Vec<u8>) {
        out.push(b'\n');
    }

    #[inline(always)]
    fn pair(out: &mut Vec<u8>, scratch: &mut Vec<u8>, key: &str, value: Value<'_>) {
        write_key(out, key);
        out.push(b'=');
        match value {
            Value::Str(s) => write_str(out, s),
            Value::Args(args) => match args.as_str() {
                Some(s) => write_str(out, s),
                None => {
                    scratch.clear();
                    // Writing to a Vec cannot fail.
                    let _ = scratch.write_fmt(*args);
                    // Formatting writes UTF-8 only.
                    write_str(out, std::str::from_utf8(scratch).unwrap_or_default());
                }
            },
            Value::F64(f) => crate::encode::write_f64(out, f),
            plain => crate::encode::write_plain(out, plain),
        }
    }
}

fn breaks_key(c: char) -> bool {
    c <= ' ' || c == '=' || c == '"' || c == '\u{7f}' || c == '\u{fffd}'
}

/// What each byte tells [`any_breaks`]: 1, a character that [`breaks_key`] (all of them ASCII
/// but U+FFFD); 2, maybe U+FFFD (`EF BF BD` in UTF-8); 0, nothing. Bytes of other non-ASCII
/// characters are never ASCII, so a table lookup per byte decides.
const CLASS: [u8; 256] = {
    let mut class = [0; 256];
    let mut b = 0;
    while b <= b' ' as usize {
        class[b] = 1;
        b += 1;
    }
    class[b'=' as usize] = 1;
    class[b'"' as usize] = 1;
    class[0x7f] = 1;
    class[0xef] = 2;
    class
};

/// Whether any character of `s` is one that [`breaks_key`]: every value and key of every
/// record is checked, so this scans bytes rather than decoding characters. Nearly all are
/// plain, so a first pass that only asks whether any byte may be suspect, eight at a time,
/// decides most; only then are the bytes looked at one by one.
#[inline(always)]
fn any_breaks(s: &str) -> bool {
    let bytes = s.as_bytes();
    may_break(bytes) && breaks(bytes)
}

/// The byte by byte look at text that [`may_break`].
#[cold]
fn breaks(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .enumerate()
        .any(|(i, &b)| match CLASS[usize::from(b)] {
            0 => false,
            1 => true,
            _ => bytes[i + 1..].starts_with(&[0xbf, 0xbd]),
        })
}

/// A word whose eight bytes are all `b`.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// Whether any of the eight bytes of `word` is below 0x23 (the controls, space, `!`, `"`),
/// `=`, DEL or 0xEF (the first byte of U+FFFD): every byte [`CLASS`] marks, and `!`. Each test
/// is the borrow trick on the whole word: a byte that underflows sets its top bit (a borrow
/// can set the next byte's too, but only above a byte that is really there, so the answer for
/// the word is exact).
#[inline(always)]
fn word_may_break(word: u64) -> bool {
    const LOW: u64 = splat(0x01);
    const HIGH: u64 = splat(0x80);
    let zero = |x: u64| x.wrapping_sub(LOW) & !x & HIGH;
    let below = word.wrapping_sub(splat(0x23)) & !word & HIGH;
    (below | zero(word ^ splat(b'=')) | zero(word ^ splat(0x7f)) | zero(word ^ splat(0xef))) != 0
}

/// Whether any byte of `bytes` may be one that [`CLASS`] marks (no false "no"): eight bytes at
/// a time, the last eight overlapping the word before them; four to seven as two overlapping
/// halves of one word; fewer one by one.
#[inline(always)]
fn may_break(bytes: &[u8]) -> bool {
    let (words, tail) = bytes.as_chunks::<8>();
    if let Some(last) = bytes.last_chunk::<8>() {
        let any = words.iter().fold(0, |any, word| {
            any | u64::from(word_may_break(u64::from_le_bytes(*word)))
        });
        return any != 0 || (!tail.is_empty() && word_may_break(u64::from_le_bytes(*last)));
    }
    match (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        (Some(low), Some(high)) => word_may_break(
            u64::from(u32::from_le_bytes(*low)) | (u64::from(u32::from_le_bytes(*high)) << 32),
        ),
        _ => bytes.iter().any(|&b| CLASS[usize::from(b)] != 0),
    }
}

// The pair's writers are inlined into `pair`, their rare paths kept out of line: a record
// writes five or so pairs, and the calls cost as much as the work (callgrind).
#[inline(always)]
fn write_key(out: &mut Vec<u8>, key: &str) {
    if key.is_empty() || any_breaks(key) {
        write_key_replaced(out, key);
    } else {
        out.extend_from_slice(key.as_bytes());
    }
}

/// `key` with each character that [`breaks_key`] as `_`; `_` for an empty key.
#[cold]
fn write_key_replaced(out: &mut Vec<u8>, key: &str) {
    if key.is_empty() {
        out.push(b'_');
    }
    for c in key.chars() {
        let c = if breaks_key(c) { '_' } else { c };
        let mut utf8 = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
    }
}

#[inline(always)]
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.is_empty() || any_breaks(s) {
        write_quoted(out, s);
    } else {
        out.extend_from_slice(s.as_bytes());
    }
}

/// `s` quoted, with escapes.
#[cold]
fn write_quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut plain = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
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
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Bytes of every length to 39: mostly plain, with suspects (and `!`) anywhere, and other
    /// non-ASCII bytes.
    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![
            8 => 0x23u8..0x7f,
            1 => 0u8..0x23,
            1 => Just(b'='),
            1 => Just(0x7fu8),
            1 => 0x80u8..=0xff,
        ];
        proptest::collection::vec(byte, 0..40)
    }

    proptest! {
        #[test]
        fn the_word_test_never_misses_a_suspect_byte(s in bytes()) {
            let marked = s.iter().any(|&b| CLASS[usize::from(b)] != 0);
            prop_assert!(may_break(&s) || !marked);
            if !s.contains(&b'!') {
                prop_assert_eq!(may_break(&s), marked);
            }
        }

        #[test]
        fn the_byte_scan_finds_what_the_char_test_finds(s in "(\\PC|[ =\"\\x00-\\x1f\\x7f\u{fffd}é])*") {
            prop_assert_eq!(any_breaks(&s), s.chars().any(breaks_key));
        }

        // Long plain runs with a rare suspect anywhere (U+FEFE starts with the byte U+FFFD
        // starts with).
        #[test]
        fn a_rare_suspect_is_judged_as_the_char_test_judges_it(s in "([a-z0-9.:/-]{0,40}(\u{fffd}|\u{fefe}|[ =\"\\x7f]|é)?){0,6}") {
            prop_assert_eq!(any_breaks(&s), s.chars().any(breaks_key));
        }
    }
}

//! Shared by the kit-log tests: a writer whose bytes can be read back, and a logfmt parser.
#![allow(dead_code)]

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// A writer shared by clones; `bytes_per_write` limits how much each `write` takes, to make a
/// record's line arrive in many pieces.
#[derive(Clone, Default)]
pub(crate) struct Captured {
    buf: Arc<Mutex<Vec<u8>>>,
    bytes_per_write: Option<usize>,
}

impl Captured {
    pub(crate) fn trickling(bytes_per_write: usize) -> Self {
        Captured {
            buf: Arc::default(),
            bytes_per_write: Some(bytes_per_write),
        }
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.buf.lock().unwrap().clone()).expect("utf-8 output")
    }
}

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let n = self.bytes_per_write.map_or(b.len(), |n| n.min(b.len()));
        self.buf.lock().unwrap().extend_from_slice(&b[..n]);
        if self.bytes_per_write.is_some() {
            std::thread::yield_now();
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Parses one logfmt line into its pairs, following the logfmt grammar: bare values run to the
/// next space; quoted values end at an unescaped quote and use JSON-style escapes.
pub(crate) fn parse_logfmt(line: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek() == Some(&' ') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some(c) if c <= ' ' || c == '"' => return Err(format!("bad key char {c:?}")),
                Some(c) => key.push(c),
                None => return Err(format!("key {key:?} without value")),
            }
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some('"') => value.push('"'),
                        Some('\\') => value.push('\\'),
                        Some('n') => value.push('\n'),
                        Some('r') => value.push('\r'),
                        Some('t') => value.push('\t'),
                        Some('u') => {
                            let hex: String = chars.by_ref().take(4).collect();
                            let code = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                            value.push(char::from_u32(code).ok_or("bad \\u escape")?);
                        }
                        other => return Err(format!("bad escape {other:?}")),
                    },
                    Some(c) if c < ' ' => return Err(format!("raw control char {c:?} in quotes")),
                    Some(c) => value.push(c),
                    None => return Err("unterminated quoted value".into()),
                }
            }
            match chars.peek() {
                None | Some(' ') => {}
                Some(c) => return Err(format!("{c:?} after a quoted value")),
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                if c < ' ' || c == '"' || c == '=' {
                    return Err(format!("{c:?} in a bare value"));
                }
                value.push(c);
                chars.next();
            }
        }
        pairs.push((key, value));
    }
}

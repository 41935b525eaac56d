//! Lazy values (go-kit's `Valuer`s): evaluated at each log call, not when the context is built.
//!
//! Put them in a logger's context with slog's `o!`; each record then gets its own value:
//!
//! ```
//! use slog::{o, Logger};
//! use kit_log::{caller, timestamp_utc};
//!
//! let root = Logger::root(slog::Discard, o!());
//! let log = root.new(o!("ts" => timestamp_utc(), "caller" => caller()));
//! ```
//!
//! Any closure works the same way through `slog::FnValue`, which kit-log re-exports.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use slog::{Key, Record, Serializer};

/// The wall-clock time of each record, in UTC, RFC 3339 with nanoseconds
/// (`2026-11-24T16:20:01.123456789Z`); go-kit's `DefaultTimestampUTC`.
///
/// Formatting writes straight into the encoder's buffer: no allocation per record.
pub fn timestamp_utc() -> TimestampUtc {
    TimestampUtc
}

/// The lazy value made by [`timestamp_utc`].
#[derive(Clone, Copy, Debug)]
pub struct TimestampUtc;

impl slog::Value for TimestampUtc {
    fn serialize(&self, _: &Record<'_>, key: Key, ser: &mut dyn Serializer) -> slog::Result {
        let now = SystemTime::now();
        crate::text::with_scratch(|scratch| match scratch.rfc3339(now) {
            Some(text) => ser.emit_str(key, text),
            None => ser.emit_arguments(key, &format_args!("{}", Rfc3339(now))),
        })
    }
}

/// The place in the source of the log statement that made each record, as `file:line`
/// (go-kit's `DefaultCaller`).
///
/// It is read from the record, which slog's macros fill in where they are written, so it is the
/// log statement's own place however many loggers, filters and contexts lie between it and the
/// encoder. The file is the path `file!()` gives, relative to the workspace.
pub fn caller() -> Caller {
    Caller
}

/// The lazy value made by [`caller`].
#[derive(Clone, Copy, Debug)]
pub struct Caller;

impl slog::Value for Caller {
    fn serialize(&self, record: &Record<'_>, key: Key, ser: &mut dyn Serializer) -> slog::Result {
        let (file, line) = (record.file(), record.line());
        crate::text::with_scratch(|scratch| ser.emit_str(key, scratch.caller(file, line)))
    }
}

/// A `SystemTime` shown as RFC 3339 in UTC with nanoseconds.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use kit_log::Rfc3339;
///
/// let t = UNIX_EPOCH + Duration::new(951_825_600, 7);
/// assert_eq!(Rfc3339(t).to_string(), "2000-02-29T12:00:00.000000007Z");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Rfc3339(pub SystemTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::text::with_scratch(|scratch| match scratch.rfc3339(self.0) {
            Some(text) => f.write_str(text),
            None => write_rfc3339(self.0, f),
        })
    }
}

/// What [`Rfc3339`] writes, through `fmt`: for the years past 9999, which the fast path
/// leaves alone.
fn write_rfc3339(t: SystemTime, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    // Times before 1970 are written as the epoch: log timestamps never need them.
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = crate::text::civil_from_days(days);
    write!(
        f,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    struct ByFmt(SystemTime);

    impl fmt::Display for ByFmt {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write_rfc3339(self.0, f)
        }
    }

    proptest! {
        #[test]
        fn the_fast_timestamp_reads_as_fmt_writes_it(secs in prop_oneof![0..253_402_300_800u64, 1_700_000_000..1_900_000_000u64],
                                                     nanos in 0..1_000_000_000u32) {
            let t = UNIX_EPOCH + Duration::new(secs, nanos);
            prop_assert_eq!(Rfc3339(t).to_string(), ByFmt(t).to_string());
        }
    }

    #[test]
    fn years_past_9999_still_read_right() {
        let t = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
        assert_eq!(Rfc3339(t).to_string(), "10000-01-01T00:00:00.000000000Z");
    }
}

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
        ser.emit_arguments(key, &format_args!("{}", Rfc3339(SystemTime::now())))
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
        ser.emit_arguments(key, &format_args!("{}:{}", record.file(), record.line()))
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
        // Times before 1970 are written as the epoch: log timestamps never need them.
        let since = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (days, rem) = (secs / 86_400, secs % 86_400);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            since.subsec_nanos()
        )
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01 (the well-known era-based conversion:
/// eras of 400 years, each 146,097 days long).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

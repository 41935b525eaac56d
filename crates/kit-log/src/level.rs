//! Levels (debug, info, warn, error), parsing them, and a filter that lets records through from
//! a level up.

use std::fmt;
use std::str::FromStr;

use slog::{Drain, OwnedKVList, Record};

/// The tag that marks a record as having no level (go-kit's records without a `level` key).
/// Encoders then write no `level`, and a [`LevelFilter`] can squelch such records.
pub const NO_LEVEL_TAG: &str = "kit-log:no-level";

/// A record's severity, go-kit's four levels.
///
/// slog's six map onto them: critical and error are `Error`, warning is `Warn`, info is
/// `Info`, debug and trace are `Debug`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Detail for developers.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the service handled.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// The lowercase name written in the `level` key.
    pub const fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl From<slog::Level> for Level {
    fn from(level: slog::Level) -> Self {
        match level {
            slog::Level::Critical | slog::Level::Error => Level::Error,
            slog::Level::Warning => Level::Warn,
            slog::Level::Info => Level::Info,
            slog::Level::Debug | slog::Level::Trace => Level::Debug,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not a level name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseLevelError(String);

impl fmt::Display for ParseLevelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown log level {:?}: expected debug, info, warn or error",
            self.0
        )
    }
}

impl std::error::Error for ParseLevelError {}

/// Parses `debug`, `info`, `warn` or `error`, in any case; `warning` is accepted for `warn`.
///
/// ```
/// use kit_log::Level;
///
/// assert_eq!("WARN".parse::<Level>(), Ok(Level::Warn));
/// assert_eq!(
///     "loud".parse::<Level>().unwrap_err().to_string(),
///     "unknown log level \"loud\": expected debug, info, warn or error"
/// );
/// ```
impl FromStr for Level {
    type Err = ParseLevelError;

    fn from_str(s: &str) -> Result<Self, ParseLevelError> {
        let known = [
            ("debug", Level::Debug),
            ("info", Level::Info),
            ("warn", Level::Warn),
            ("warning", Level::Warn),
            ("error", Level::Error),
        ];
        known
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s.trim()))
            .map(|&(_, level)| level)
            .ok_or_else(|| ParseLevelError(s.to_owned()))
    }
}

/// What a [`LevelFilter`] did with a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The record was passed on.
    Logged,
    /// The record was below the allowed level, or had no level and such records are squelched
    /// (go-kit's `ErrNotAllowed`).
    NotAllowed,
}

/// Passes on records from a level up (go-kit's `level.NewFilter` with `Allow...`).
///
/// Its `Ok` tells the caller whether the record was allowed ([`Verdict`]). Records without a
/// level ([`NO_LEVEL_TAG`]) pass unless [`LevelFilter::squelch_no_level`] is set. The check
/// happens before any value is evaluated or encoded, so a disallowed record costs a comparison.
pub struct LevelFilter<D> {
    drain: D,
    min: Level,
    squelch_no_level: bool,
}

impl<D> LevelFilter<D> {
    /// Passes records of level `min` and above to `drain`.
    pub fn new(drain: D, min: Level) -> Self {
        LevelFilter {
            drain,
            min,
            squelch_no_level: false,
        }
    }

    /// Also drops records that have no level (go-kit's `SquelchNoLevel(true)`).
    pub fn squelch_no_level(mut self, squelch: bool) -> Self {
        self.squelch_no_level = squelch;
        self
    }

    fn allows(&self, record: &Record<'_>) -> bool {
        if record.tag() == NO_LEVEL_TAG {
            !self.squelch_no_level
        } else {
            Level::from(record.level()) >= self.min
        }
    }
}

impl<D: Drain> Drain for LevelFilter<D> {
    type Ok = Verdict;
    type Err = D::Err;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<Verdict, D::Err> {
        if !self.allows(record) {
            return Ok(Verdict::NotAllowed);
        }
        self.drain.log(record, values).map(|_| Verdict::Logged)
    }

    /// Whether records of `level` pass. Records without a level are decided in `log` by their
    /// tag, which this hint cannot see.
    fn is_enabled(&self, level: slog::Level) -> bool {
        Level::from(level) >= self.min && self.drain.is_enabled(level)
    }
}

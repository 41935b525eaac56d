//! The go-kit-style logger: alternating keys and values, context added with `with`,
//! `with_prefix` and `with_suffix`.
//!
//! A record's line holds, in order: `level`, the prefix and context pairs (oldest first, each
//! prefix before everything added earlier), the call's own pairs, then the suffix pairs. This is
//! go-kit's `log.With`/`WithPrefix`/`WithSuffix` order, built on slog's two lists: prefix and
//! context travel as the logger's context list, the suffix rides behind the call's own pairs in
//! the record, so encoders need no marker keys.

use std::fmt;
use std::panic::RefUnwindSafe;
use std::sync::Arc;

use slog::{
    BorrowedKV, Drain, KV, Never, OwnedKV, OwnedKVList, Record, RecordStatic,
    SendSyncRefUnwindSafeKV, Serializer, Value,
};

use crate::level::Verdict;

/// The value given to a key that has none: `log!(logger, "a", 1, "b")` writes `b=(MISSING)`
/// (go-kit's `ErrMissingValue`).
pub const MISSING: &str = "(MISSING)";

/// A drain whose result is a [`Verdict`] and whose errors were dealt with inside it.
trait VerdictDrain: Send + Sync + RefUnwindSafe {
    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Verdict;
}

impl<D> VerdictDrain for D
where
    D: Drain<Err = Never> + Send + Sync + RefUnwindSafe,
    D::Ok: DrainOk,
{
    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Verdict {
        match Drain::log(self, record, values) {
            Ok(ok) => ok.verdict(),
            Err(never) => match never {},
        }
    }
}

/// What a drain's `Ok` says about the record: a [`LevelFilter`](crate::LevelFilter) gives a
/// [`Verdict`]; any other drain (`()`) passed the record on. Sealed.
pub trait DrainOk: crate::encode::sealed::Sealed {
    /// The verdict this result stands for.
    #[doc(hidden)]
    fn verdict(self) -> Verdict;
}

impl crate::encode::sealed::Sealed for () {}
impl DrainOk for () {
    fn verdict(self) -> Verdict {
        Verdict::Logged
    }
}

impl crate::encode::sealed::Sealed for Verdict {}
impl DrainOk for Verdict {
    fn verdict(self) -> Verdict {
        self
    }
}

type Segment = Arc<dyn SendSyncRefUnwindSafeKV>;

/// Context segments in the order they were added. slog expects a list's pairs newest first
/// (encoders turn them back), so they are serialized from the last segment to the first.
#[derive(Clone, Default)]
struct Segments(Arc<[Segment]>);

impl Segments {
    fn with(&self, first: Option<Segment>, last: Option<Segment>) -> Segments {
        let segments = first.into_iter().chain(self.0.iter().cloned()).chain(last);
        Segments(segments.collect())
    }

    fn list(&self) -> OwnedKVList {
        OwnedKVList::from(OwnedKV(self.clone()))
    }
}

impl KV for Segments {
    fn serialize(&self, record: &Record<'_>, serializer: &mut dyn Serializer) -> slog::Result {
        self.0
            .iter()
            .rev()
            .try_for_each(|segment| segment.serialize(record, serializer))
    }
}

/// A call's own pairs, as the logging macros collect them (in call order).
struct Pairs<'a>(&'a [(&'static str, &'a dyn Value)]);

impl KV for Pairs<'_> {
    fn serialize(&self, record: &Record<'_>, serializer: &mut dyn Serializer) -> slog::Result {
        self.0
            .iter()
            .rev()
            .try_for_each(|&(key, value)| value.serialize(record, key, serializer))
    }
}

/// A go-kit-style logger: log alternating keys and values with [`log!`](crate::log!) or the
/// levelled macros ([`info!`](crate::info!) and its siblings), add context with
/// [`with`](Logger::with), [`with_prefix`](Logger::with_prefix) and
/// [`with_suffix`](Logger::with_suffix).
///
/// It writes to a slog drain that has dealt with its own errors (`Err = Never`: wrap an
/// encoder in `.ignore_res()` or `.fuse()`, as for a `slog::Logger`), and hands the caller the
/// drain's [`Verdict`], so a [`LevelFilter`](crate::LevelFilter) can say that a record was not
/// allowed. Cloning is cheap; context values may be lazy ([`timestamp_utc`](crate::timestamp_utc),
/// [`caller`](crate::caller), any [`FnValue`](crate::FnValue)), evaluated at each log call.
///
/// ```
/// use kit_log::{caller, kv, Level, LevelFilter, Logfmt, Logger, Verdict};
/// use slog::Drain;
///
/// let drain = LevelFilter::new(Logfmt::new(std::io::stdout()).ignore_res(), Level::Info);
/// let logger = Logger::new(drain).with(kv!("svc", "add", "caller", caller()));
/// kit_log::info!(logger, "msg", "listening", "addr", "127.0.0.1:8081");
/// // level=info svc=add caller=src/main.rs:6 msg=listening addr=127.0.0.1:8081
/// assert_eq!(kit_log::debug!(logger, "msg", "hidden"), Verdict::NotAllowed);
/// ```
#[derive(Clone)]
pub struct Logger {
    drain: Arc<dyn VerdictDrain>,
    /// Prefix and context, oldest first: the record's context list.
    context: Segments,
    /// The same, ready for the drain.
    list: OwnedKVList,
    /// Suffix segments, written after the call's own pairs.
    suffix: Segments,
}

impl Logger {
    /// A logger with no context writing to `drain`.
    pub fn new<D>(drain: D) -> Logger
    where
        D: Drain<Err = Never> + Send + Sync + RefUnwindSafe + 'static,
        D::Ok: DrainOk,
    {
        let context = Segments::default();
        Logger {
            drain: Arc::new(drain),
            list: context.list(),
            context,
            suffix: Segments::default(),
        }
    }

    fn with_context(&self, context: Segments, suffix: Segments) -> Logger {
        Logger {
            drain: Arc::clone(&self.drain),
            list: context.list(),
            context,
            suffix,
        }
    }

    /// A logger that adds `pairs` after this one's context (go-kit's `log.With`). Build them
    /// with [`kv!`](crate::kv!) (alternating keys and values) or slog's `o!`.
    #[must_use = "a logger with more context is returned; the original is unchanged"]
    pub fn with<T: SendSyncRefUnwindSafeKV + 'static>(&self, pairs: OwnedKV<T>) -> Logger {
        let context = self.context.with(None, Some(Arc::new(pairs.0)));
        self.with_context(context, self.suffix.clone())
    }

    /// A logger that adds `pairs` before all of this one's context, prefixes included (go-kit's
    /// `log.WithPrefix`).
    #[must_use = "a logger with more context is returned; the original is unchanged"]
    pub fn with_prefix<T: SendSyncRefUnwindSafeKV + 'static>(&self, pairs: OwnedKV<T>) -> Logger {
        let context = self.context.with(Some(Arc::new(pairs.0)), None);
        self.with_context(context, self.suffix.clone())
    }

    /// A logger that writes `pairs` after each call's own pairs and after the suffixes added
    /// before (go-kit's `log.WithSuffix`).
    #[must_use = "a logger with more context is returned; the original is unchanged"]
    pub fn with_suffix<T: SendSyncRefUnwindSafeKV + 'static>(&self, pairs: OwnedKV<T>) -> Logger {
        let suffix = self.suffix.with(None, Some(Arc::new(pairs.0)));
        self.with_context(self.context.clone(), suffix)
    }

    /// A `slog::Logger` on the same drain and context, for slog's macros and for middleware
    /// that takes one. slog has no suffix, so the suffix pairs become the last context pairs.
    pub fn slog(&self) -> slog::Logger {
        let all = Segments(
            self.context
                .0
                .iter()
                .chain(self.suffix.0.iter())
                .cloned()
                .collect(),
        );
        slog::Logger::root(ToSlog(Arc::clone(&self.drain)), OwnedKV(all))
    }

    /// Writes one record of the call's `pairs`; the logging macros call this.
    #[doc(hidden)]
    pub fn __log(
        &self,
        rstatic: &'static RecordStatic<'static>,
        pairs: &[(&'static str, &dyn Value)],
    ) -> Verdict {
        self.write(rstatic, &format_args!(""), pairs)
    }

    /// Writes one record: the bridges come here with their own place, message and pairs.
    pub(crate) fn write(
        &self,
        rstatic: &RecordStatic<'_>,
        msg: &fmt::Arguments<'_>,
        pairs: &[(&'static str, &dyn Value)],
    ) -> Verdict {
        // The suffix is serialized first: slog's order is newest first, and encoders reverse it.
        let kv = (&self.suffix, Pairs(pairs));
        self.drain
            .log(&Record::new(rstatic, msg, BorrowedKV(&kv)), &self.list)
    }
}

/// A kit logger on a `slog::Logger` (its drain and context), so that code taking a kit logger
/// accepts either.
impl From<slog::Logger> for Logger {
    fn from(logger: slog::Logger) -> Logger {
        Logger::new(logger)
    }
}

impl From<Logger> for slog::Logger {
    fn from(logger: Logger) -> slog::Logger {
        logger.slog()
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Logger")
            .field("context_segments", &self.context.0.len())
            .field("suffix_segments", &self.suffix.0.len())
            .finish_non_exhaustive()
    }
}

/// The logger's drain behind a `slog::Logger`, whose drains return `()`.
struct ToSlog(Arc<dyn VerdictDrain>);

impl Drain for ToSlog {
    type Ok = ();
    type Err = Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), Never> {
        self.0.log(record, values);
        Ok(())
    }
}

/// Logs alternating keys and values as a record with no level (go-kit's `logger.Log`); an odd
/// count gives the last key the value [`MISSING`]. Evaluates to the drain's
/// [`Verdict`](crate::Verdict).
///
/// The value expressions are evaluated (to references) before the drain decides; lazy values
/// and formatting run only for records that are written.
///
/// Keys are `&'static str`; values are anything slog can serialize (numbers, strings, `bool`,
/// `Option`, lazy values, `format_args!`).
///
/// ```
/// use kit_log::{Logfmt, Logger};
/// use slog::Drain;
///
/// let logger = Logger::new(Logfmt::new(std::io::stdout()).ignore_res());
/// kit_log::log!(logger, "question", "what is the meaning of life?", "answer");
/// // question="what is the meaning of life?" answer=(MISSING)
/// ```
#[macro_export]
macro_rules! log {
    ($logger:expr $(, $($pairs:tt)*)?) => {
        $crate::__log_at!($logger, $crate::__slog::Level::Info, $crate::NO_LEVEL_TAG $(, $($pairs)*)?)
    };
}

/// Logs alternating keys and values at level debug; see [`log!`](crate::log!).
#[macro_export]
macro_rules! debug {
    ($logger:expr $(, $($pairs:tt)*)?) => {
        $crate::__log_at!($logger, $crate::__slog::Level::Debug, "" $(, $($pairs)*)?)
    };
}

/// Logs alternating keys and values at level info; see [`log!`](crate::log!).
#[macro_export]
macro_rules! info {
    ($logger:expr $(, $($pairs:tt)*)?) => {
        $crate::__log_at!($logger, $crate::__slog::Level::Info, "" $(, $($pairs)*)?)
    };
}

/// Logs alternating keys and values at level warn; see [`log!`](crate::log!).
#[macro_export]
macro_rules! warn {
    ($logger:expr $(, $($pairs:tt)*)?) => {
        $crate::__log_at!($logger, $crate::__slog::Level::Warning, "" $(, $($pairs)*)?)
    };
}

/// Logs alternating keys and values at level error; see [`log!`](crate::log!).
#[macro_export]
macro_rules! error {
    ($logger:expr $(, $($pairs:tt)*)?) => {
        $crate::__log_at!($logger, $crate::__slog::Level::Error, "" $(, $($pairs)*)?)
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_at {
    ($logger:expr, $level:expr, $tag:expr $(, $($pairs:tt)*)?) => {{
        static RS: $crate::__slog::RecordStatic<'static> =
            $crate::__slog::record_static!($level, $tag);
        $crate::Logger::__log(&$logger, &RS, &$crate::__pairs!([] $($($pairs)*)?))
    }};
}

/// Turns `k1, v1, k2, v2, ...` into an array of `(key, &dyn Value)`, odd count padded.
#[doc(hidden)]
#[macro_export]
macro_rules! __pairs {
    ([$($out:tt)*]) => { [$($out)*] };
    ([$($out:tt)*] $key:expr, $value:expr $(, $($rest:tt)*)?) => {
        $crate::__pairs!([$($out)* ($key, &$value as &dyn $crate::__slog::Value),] $($($rest)*)?)
    };
    ([$($out:tt)*] $key:expr $(,)?) => {
        [$($out)* ($key, &$crate::MISSING as &dyn $crate::__slog::Value)]
    };
}

/// Context pairs from alternating keys and values, for [`Logger::with`] and its siblings; an
/// odd count gives the last key the value [`MISSING`]. Values are owned (`'static`), and may be
/// lazy.
///
/// ```
/// use kit_log::{kv, timestamp_utc, Logfmt, Logger};
/// use slog::Drain;
///
/// let logger = Logger::new(Logfmt::new(std::io::stdout()).ignore_res())
///     .with(kv!("ts", timestamp_utc(), "instance", 3));
/// ```
#[macro_export]
macro_rules! kv {
    (@o [$($out:tt)*]) => { $crate::__slog::o!($($out)*) };
    (@o [$($out:tt)*] $key:expr, $value:expr $(, $($rest:tt)*)?) => {
        $crate::kv!(@o [$($out)* $key => $value,] $($($rest)*)?)
    };
    (@o [$($out:tt)*] $key:expr $(,)?) => {
        $crate::kv!(@o [$($out)* $key => $crate::MISSING,])
    };
    ($($pairs:tt)*) => { $crate::kv!(@o [] $($pairs)*) };
}

//! Records of the `log` crate into a kit logger, so that libraries logging through `log` end up
//! in the same lines, encoded the same way, as the service's own records.

use slog::{RecordLocation, RecordStatic};

use crate::level::Level;
use crate::logger::Logger;

/// A `log::Log` that writes each `log` record to a kit [`Logger`]: its level as `level`, its
/// message as `msg`, and its target as `target`, after the logger's context. The record's
/// `file:line` is the place [`caller`](crate::caller) reports. `trace` records become `debug`
/// (go-kit has four levels).
///
/// ```
/// use kit_log::{Level, LogBridge, Logfmt, Logger};
/// use slog::Drain;
///
/// let logger = Logger::new(Logfmt::new(std::io::stderr()).ignore_res());
/// LogBridge::new(logger).install(Level::Info).expect("no other `log` logger yet");
/// log::info!(target: "db", "connected");
/// // level=info msg=connected target=db
/// ```
#[derive(Clone, Debug)]
pub struct LogBridge {
    logger: Logger,
}

impl LogBridge {
    /// Writes `log` records to `logger`.
    pub fn new(logger: Logger) -> Self {
        LogBridge { logger }
    }

    /// Makes this the process's `log` logger, passing records from `min` up (`log`'s own max
    /// level, which its macros check before doing any work; `Debug` lets `trace` records
    /// through too, as debug). Fails if a `log` logger was installed before: `log` allows one
    /// per process.
    pub fn install(self, min: Level) -> Result<(), log::SetLoggerError> {
        log::set_boxed_logger(Box::new(self))?;
        log::set_max_level(match min {
            Level::Debug => log::LevelFilter::Trace,
            Level::Info => log::LevelFilter::Info,
            Level::Warn => log::LevelFilter::Warn,
            Level::Error => log::LevelFilter::Error,
        });
        Ok(())
    }
}

fn slog_level(level: log::Level) -> slog::Level {
    match level {
        log::Level::Error => slog::Level::Error,
        log::Level::Warn => slog::Level::Warning,
        log::Level::Info => slog::Level::Info,
        log::Level::Debug | log::Level::Trace => slog::Level::Debug,
    }
}

impl log::Log for LogBridge {
    /// Every record within `log`'s max level is offered to the logger, whose drain (a level
    /// filter, say) decides; so `log::log_enabled!` answers from the max level only.
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let location = RecordLocation {
            file: record.file_static().unwrap_or("<unknown>"),
            line: record.line().unwrap_or(0),
            column: 0,
            function: "",
            module: record.module_path_static().unwrap_or(""),
        };
        let rstatic = RecordStatic {
            location: &location,
            tag: "",
            level: slog_level(record.level()),
        };
        let target = record.target();
        self.logger
            .write(&rstatic, record.args(), &[("target", &target)]);
    }

    fn flush(&self) {}
}

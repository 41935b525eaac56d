//! Graphite's plaintext protocol over TCP (go-kit's `graphite`), reconnecting with backoff.
//!
//! Each flush writes `path value timestamp` lines: counters send the sum since the last flush,
//! gauges their value, histograms `path.count`, `.sum`, `.min`, `.max`, `.p50`, `.p90`,
//! `.p95` and `.p99` over the interval's observations. Label pairs become Graphite 1.1 tags
//! (`path;method=sum`); characters tags cannot hold (`;`, `!`, `^`, `=`, `~`, whitespace)
//! become `_`, and so do whitespace characters in paths. Non-finite values are not written.
//!
//! When the connection fails, the flush's lines are lost and counted, and connecting is retried
//! with exponential backoff (100 ms doubling to 30 s), so a Graphite that is down costs one
//! connection attempt per backoff step, not one per flush. Lines written just before the peer
//! closed can be lost without notice: TCP reports the close only on a later write.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::MetricError;
use crate::push::{
    Emitter, LineFormat, PushCounter, PushGauge, PushHistogram, PushOptions, Reading, Series, Sink,
    number, summary,
};

struct GraphiteFormat;

fn clean(out: &mut String, text: &str, tag: bool) {
    out.extend(text.chars().map(|c| match c {
        c if c.is_whitespace() => '_',
        ';' | '!' | '^' | '=' | '~' if tag => '_',
        c => c,
    }));
}

impl GraphiteFormat {
    fn line(out: &mut Vec<String>, series: &Series, suffix: &str, value: f64, seconds: u64) {
        if !value.is_finite() {
            return;
        }
        let mut line = String::new();
        clean(&mut line, &series.name, false);
        line.push_str(suffix);
        for (k, v) in &series.labels {
            line.push(';');
            clean(&mut line, k, true);
            line.push('=');
            clean(&mut line, if v.is_empty() { "none" } else { v }, true);
        }
        line.push(' ');
        number(&mut line, value);
        line.push_str(&format!(" {seconds}\n"));
        out.push(line);
    }
}

impl LineFormat for GraphiteFormat {
    fn write(&self, out: &mut Vec<String>, series: &Series, reading: Reading<'_>, now: SystemTime) {
        let seconds = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        match reading {
            Reading::Counter(v) | Reading::Gauge(v) => Self::line(out, series, "", v, seconds),
            Reading::Histogram(values) => {
                for (field, v) in summary(values) {
                    Self::line(out, series, &format!(".{field}"), v, seconds);
                }
            }
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A TCP connection that is remade after failures, no sooner than the backoff allows.
struct TcpSink {
    addr: SocketAddr,
    connection: Option<TcpStream>,
    backoff: Duration,
    retry_at: Instant,
}

impl TcpSink {
    fn failed(&mut self) {
        self.connection = None;
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    }

    fn connection(&mut self) -> Option<&mut TcpStream> {
        if self.connection.is_none() && Instant::now() >= self.retry_at {
            match TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)) {
                Ok(stream) => {
                    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
                    self.connection = Some(stream);
                    self.backoff = FIRST_BACKOFF;
                }
                Err(_) => self.failed(),
            }
        }
        self.connection.as_mut()
    }
}

impl Sink for TcpSink {
    fn send(&mut self, lines: &[String]) -> usize {
        let body = lines.concat();
        let written = match self.connection() {
            Some(stream) => stream
                .write_all(body.as_bytes())
                .and_then(|()| stream.flush()),
            None => return lines.len(),
        };
        match written {
            Ok(()) => 0,
            Err(_) => {
                self.failed();
                lines.len()
            }
        }
    }
}

/// A Graphite backend: counters, gauges and histograms sent by a flush thread over TCP. Cheap
/// to clone; keep one alive while metrics are recorded.
#[derive(Clone)]
pub struct Graphite {
    emitter: Emitter,
}

impl Graphite {
    /// Sends to the Graphite (carbon) plaintext listener at `addr`; paths are prefixed with
    /// `prefix` verbatim (`"addsvc."`). The first connection is made at the first flush.
    pub fn new(prefix: &str, addr: SocketAddr, options: PushOptions) -> Graphite {
        let sink = TcpSink {
            addr,
            connection: None,
            backoff: FIRST_BACKOFF,
            retry_at: Instant::now(),
        };
        Graphite {
            emitter: Emitter::start(prefix, GraphiteFormat, sink, options),
        }
    }

    /// A counter with `label_names` (tags once labelled).
    pub fn counter(&self, name: &str, label_names: &[&str]) -> Result<PushCounter, MetricError> {
        self.emitter.counter(name, label_names, 1.0)
    }

    /// A gauge with `label_names`.
    pub fn gauge(&self, name: &str, label_names: &[&str]) -> Result<PushGauge, MetricError> {
        self.emitter.gauge(name, label_names)
    }

    /// A histogram with `label_names`, written as summary paths each flush.
    pub fn histogram(
        &self,
        name: &str,
        label_names: &[&str],
    ) -> Result<PushHistogram, MetricError> {
        self.emitter.histogram(name, label_names, "", 1.0)
    }

    /// Sends what was recorded since the last flush, now.
    pub fn flush(&self) {
        self.emitter.flush();
    }

    /// Lines lost so far (the connection was down or failed).
    pub fn lost(&self) -> u64 {
        self.emitter.lost()
    }
}

impl std::fmt::Debug for Graphite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graphite").finish_non_exhaustive()
    }
}

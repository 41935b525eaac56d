//! StatsD and DogStatsD over UDP (go-kit's `statsd` and `dogstatsd`).
//!
//! StatsD lines are `name:value|type`, with `|@rate` for sampled metrics: counters (`c`) send
//! the sum of their deltas since the last flush, gauges (`g`) their last value, timings (`ms`)
//! every observation. StatsD has no labels: label values are accepted and not written, so
//! series that differ only by labels add up (as in go-kit). DogStatsD adds tags from label
//! pairs (`|#method:sum,success:true`) and histograms (`h`) and distributions (`d`).
//!
//! Non-finite values are not sent: the format has no spelling for them. Tag keys and values
//! lose the characters the format reserves (`|`, `,`, `#`, and `:` in keys; newlines anywhere):
//! each becomes `_`.
//!
//! ```no_run
//! use kit_metrics::{Counter, statsd::Statsd, PushOptions};
//!
//! let statsd = Statsd::new("addsvc.", "127.0.0.1:8125".parse().unwrap(), PushOptions::default()).unwrap();
//! let sums = statsd.counter("sums", 1.0).unwrap();
//! sums.add(1.0); // sent as `addsvc.sums:1|c` within the flush interval
//! ```

use std::io;
use std::net::SocketAddr;
use std::time::SystemTime;

use crate::MetricError;
use crate::push::{
    Emitter, Kind, LineFormat, PushCounter, PushGauge, PushHistogram, PushOptions, Reading, Series,
    UdpSink, number,
};

/// The StatsD lines of a series; `tags` adds DogStatsD's tags.
struct StatsdFormat {
    tags: bool,
}

impl StatsdFormat {
    fn line(&self, out: &mut Vec<String>, series: &Series, value: f64, kind: &str) {
        if !value.is_finite() {
            return;
        }
        let mut line = String::with_capacity(series.name.len() + 24);
        line.push_str(&series.name);
        line.push(':');
        number(&mut line, value);
        line.push('|');
        line.push_str(kind);
        if series.sample_rate < 1.0 && kind != "g" {
            line.push_str("|@");
            number(&mut line, series.sample_rate);
        }
        if self.tags && !series.labels.is_empty() {
            line.push_str("|#");
            for (i, (k, v)) in series.labels.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                push_tag(&mut line, k, true);
                line.push(':');
                push_tag(&mut line, v, false);
            }
        }
        line.push('\n');
        out.push(line);
    }
}

fn push_tag(out: &mut String, text: &str, key: bool) {
    out.extend(text.chars().map(|c| match c {
        '|' | ',' | '#' | '\n' | '\r' => '_',
        ':' if key => '_',
        c => c,
    }));
}

impl LineFormat for StatsdFormat {
    fn write(&self, out: &mut Vec<String>, series: &Series, reading: Reading<'_>, _: SystemTime) {
        match (reading, series.kind) {
            (Reading::Counter(sum), _) => self.line(out, series, sum, "c"),
            (Reading::Gauge(value), _) => self.line(out, series, value, "g"),
            (Reading::Histogram(values), Kind::Histogram(kind)) => {
                for &value in values {
                    self.line(out, series, value, kind);
                }
            }
            (Reading::Histogram(_), _) => {}
        }
    }
}

/// A StatsD backend: makes counters, gauges and timings that a flush thread sends to a StatsD
/// server over UDP. Cheap to clone; keep one alive for as long as metrics are recorded (it
/// owns the flush thread), and call [`flush`](Statsd::flush) before exiting.
#[derive(Clone)]
pub struct Statsd {
    emitter: Emitter,
}

impl Statsd {
    /// Sends to the StatsD server at `to`; every metric name is prefixed with `prefix`
    /// verbatim (include the separator: `"addsvc."`).
    pub fn new(prefix: &str, to: SocketAddr, options: PushOptions) -> io::Result<Statsd> {
        let sink = UdpSink::connect(to, options.mtu)?;
        Ok(Statsd {
            emitter: Emitter::start(prefix, StatsdFormat { tags: false }, sink, options),
        })
    }

    /// A counter; `sample_rate` in (0, 1] keeps that share of the updates and tells the server
    /// (`|@0.1`), which scales them back.
    pub fn counter(&self, name: &str, sample_rate: f64) -> Result<PushCounter, MetricError> {
        self.emitter.counter(name, &[], sample_rate)
    }

    /// A gauge.
    pub fn gauge(&self, name: &str) -> Result<PushGauge, MetricError> {
        self.emitter.gauge(name, &[])
    }

    /// A timing (`ms`): observe seconds, as every kit-metrics duration is ([`Timer`],
    /// [`Metrics`]); they are sent in milliseconds. `sample_rate` as for counters.
    ///
    /// [`Timer`]: crate::Timer
    /// [`Metrics`]: crate::Metrics
    pub fn timing(&self, name: &str, sample_rate: f64) -> Result<PushHistogram, MetricError> {
        self.emitter.histogram(name, &[], "ms", sample_rate)
    }

    /// Sends what was recorded since the last flush, now.
    pub fn flush(&self) {
        self.emitter.flush();
    }

    /// Lines lost so far (sends that failed, lines longer than the MTU).
    pub fn lost(&self) -> u64 {
        self.emitter.lost()
    }
}

/// A DogStatsD backend: StatsD with tags from label pairs, histograms and distributions.
#[derive(Clone)]
pub struct DogStatsd {
    emitter: Emitter,
}

impl DogStatsd {
    /// Sends to the DogStatsD agent at `to`; names are prefixed with `prefix` verbatim.
    pub fn new(prefix: &str, to: SocketAddr, options: PushOptions) -> io::Result<DogStatsd> {
        let sink = UdpSink::connect(to, options.mtu)?;
        Ok(DogStatsd {
            emitter: Emitter::start(prefix, StatsdFormat { tags: true }, sink, options),
        })
    }

    /// A counter with `label_names` (tags once labelled); `sample_rate` in (0, 1].
    pub fn counter(
        &self,
        name: &str,
        label_names: &[&str],
        sample_rate: f64,
    ) -> Result<PushCounter, MetricError> {
        self.emitter.counter(name, label_names, sample_rate)
    }

    /// A gauge with `label_names`.
    pub fn gauge(&self, name: &str, label_names: &[&str]) -> Result<PushGauge, MetricError> {
        self.emitter.gauge(name, label_names)
    }

    /// A timing (`ms`) with `label_names`: observe seconds, sent in milliseconds.
    pub fn timing(
        &self,
        name: &str,
        label_names: &[&str],
        sample_rate: f64,
    ) -> Result<PushHistogram, MetricError> {
        self.emitter.histogram(name, label_names, "ms", sample_rate)
    }

    /// A histogram (`h`, aggregated by the agent) with `label_names`.
    pub fn histogram(
        &self,
        name: &str,
        label_names: &[&str],
        sample_rate: f64,
    ) -> Result<PushHistogram, MetricError> {
        self.emitter.histogram(name, label_names, "h", sample_rate)
    }

    /// A distribution (`d`, aggregated server-side across hosts) with `label_names`.
    pub fn distribution(
        &self,
        name: &str,
        label_names: &[&str],
        sample_rate: f64,
    ) -> Result<PushHistogram, MetricError> {
        self.emitter.histogram(name, label_names, "d", sample_rate)
    }

    /// Sends what was recorded since the last flush, now.
    pub fn flush(&self) {
        self.emitter.flush();
    }

    /// Lines lost so far.
    pub fn lost(&self) -> u64 {
        self.emitter.lost()
    }
}

impl std::fmt::Debug for Statsd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Statsd").finish_non_exhaustive()
    }
}

impl std::fmt::Debug for DogStatsd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DogStatsd").finish_non_exhaustive()
    }
}

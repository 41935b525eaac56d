//! The machinery the push backends share (StatsD, DogStatsD, Influx, Graphite): series that
//! callers update with atomics, and a flush thread that turns them into lines of the backend's
//! format and sends them, so that callers never wait on the network.
//!
//! Updates aggregate between flushes, as go-kit's push backends do: a counter sends the sum of
//! its deltas since the last flush, a gauge its last value (if it was set since), a histogram
//! its observations (each one for StatsD, a summary for Influx and Graphite). The flush thread
//! runs every interval, and sooner when histogram observations pile up past the MTU.
//!
//! Bounds (from issue 17): a histogram series keeps at most [`MAX_OBSERVATIONS`] between
//! flushes (more are dropped and counted as lost, so a flush held up by a sink that is down
//! cannot let memory grow without end); a series no metric handle holds and with nothing to send
//! is forgotten at each flush (label values that come and go do not pile up); the interval is
//! at least [`MIN_FLUSH_INTERVAL`] (0 made the flush thread spin).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError, Weak};
use std::time::{Duration, SystemTime};

use crate::{
    Counter, Gauge, Histogram, MetricError, check_arity, check_label_names, check_metric_name,
};

/// What kind of series, and for histograms how the backend writes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    /// A histogram; the string is the StatsD type (`ms`, `h`, `d`) where that matters.
    Histogram(&'static str),
}

/// One series: a metric name with label pairs, and what callers recorded since the last flush.
pub(crate) struct Series {
    pub(crate) name: String,
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) kind: Kind,
    pub(crate) sample_rate: f64,
    /// Counter: the sum since the last flush; gauge: the value. As `f64` bits.
    value: AtomicU64,
    /// Whether there is anything to send.
    dirty: AtomicBool,
    observations: Mutex<Vec<f64>>,
    pressure: Arc<Pressure>,
}

/// How many histogram bytes wait for the next flush, and how to wake the flusher early.
struct Pressure {
    pending_bytes: AtomicUsize,
    /// Observations dropped because their series was full; counted as lost at the next flush.
    dropped: AtomicU64,
    mtu: usize,
    wake: Arc<Wake>,
}

/// A flush's view of one series.
pub(crate) enum Reading<'a> {
    Counter(f64),
    Gauge(f64),
    Histogram(&'a [f64]),
}

impl Series {
    fn update(&self, f: impl Fn(f64) -> f64) {
        let _ = self
            .value
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some(f(f64::from_bits(bits)).to_bits())
            });
        self.dirty.store(true, Ordering::Release);
    }
}

/// How a backend writes lines; lines end with `\n`.
pub(crate) trait LineFormat: Send + Sync + 'static {
    /// Appends the lines for `series` to `out`; `now` is the flush's wall-clock time.
    fn write(&self, out: &mut Vec<String>, series: &Series, reading: Reading<'_>, now: SystemTime);
}

/// Where lines go.
pub(crate) trait Sink: Send + 'static {
    /// Sends one flush's lines; returns how many lines were lost.
    fn send(&mut self, lines: &[String]) -> usize;
}

/// Options every push backend takes.
#[derive(Clone, Copy, Debug)]
pub struct PushOptions {
    /// How often the flush thread sends. Default 10 s; at least 10 ms.
    pub flush_interval: Duration,
    /// The largest datagram (UDP sinks) in bytes, and the amount of pending histogram
    /// observations that triggers an early flush. Default 1432 (a 1500-byte Ethernet MTU less
    /// IP and UDP headers, with room for IPv6).
    pub mtu: usize,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            flush_interval: Duration::from_secs(10),
            mtu: 1432,
        }
    }
}

/// The most observations a histogram series keeps between two flushes.
pub(crate) const MAX_OBSERVATIONS: usize = 10_000;

/// The shortest flush interval; shorter ones are raised to it.
pub(crate) const MIN_FLUSH_INTERVAL: Duration = Duration::from_millis(10);

/// A series' identity: its full name and label values.
type SeriesKey = (String, Vec<String>);

struct Registry {
    prefix: String,
    format: Box<dyn LineFormat>,
    series: Mutex<HashMap<SeriesKey, Arc<Series>>>,
    pressure: Arc<Pressure>,
    lost: AtomicU64,
    sink: Mutex<Box<dyn Sink>>,
}

#[derive(Default)]
struct Wake {
    early: Mutex<bool>,
    signal: Condvar,
}

/// The root of a push backend: makes metrics and owns the flush thread, which stops when the
/// root and every metric made from it are dropped.
#[derive(Clone)]
pub(crate) struct Emitter {
    registry: Arc<Registry>,
}

impl Emitter {
    pub(crate) fn start(
        prefix: &str,
        format: impl LineFormat,
        sink: impl Sink,
        options: PushOptions,
    ) -> Emitter {
        let wake = Arc::new(Wake::default());
        let registry = Arc::new(Registry {
            prefix: prefix.to_owned(),
            format: Box::new(format),
            series: Mutex::new(HashMap::new()),
            pressure: Arc::new(Pressure {
                pending_bytes: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
                mtu: options.mtu.max(64),
                wake: Arc::clone(&wake),
            }),
            lost: AtomicU64::new(0),
            sink: Mutex::new(Box::new(sink)),
        });
        let weak = Arc::downgrade(&registry);
        std::thread::Builder::new()
            .name("kit-metrics-push".into())
            .spawn(move || flush_loop(&weak, &wake, options.flush_interval.max(MIN_FLUSH_INTERVAL)))
            .expect("spawning the metrics flush thread");
        Emitter { registry }
    }

    /// Sends what was recorded since the last flush, now, on the caller's thread.
    pub(crate) fn flush(&self) {
        self.registry.flush();
    }

    /// Lines lost so far: sends that failed, datagrams too large, a connection that was down,
    /// and histogram observations dropped past [`MAX_OBSERVATIONS`] between two flushes.
    pub(crate) fn lost(&self) -> u64 {
        self.registry.lost.load(Ordering::Relaxed)
    }

    fn family(
        &self,
        name: &str,
        label_names: &[&str],
        kind: Kind,
        sample_rate: f64,
    ) -> Result<Arc<Family>, MetricError> {
        check_metric_name(name)?;
        check_label_names(label_names)?;
        if !(sample_rate > 0.0 && sample_rate <= 1.0) {
            return Err(MetricError::InvalidName {
                name: format!("{name} (sample rate {sample_rate})"),
                reason: "sample rates are in (0, 1]",
            });
        }
        Ok(Arc::new(Family {
            registry: Arc::clone(&self.registry),
            name: format!("{}{name}", self.registry.prefix),
            label_names: label_names.iter().map(|s| (*s).to_owned()).collect(),
            kind,
            sample_rate,
        }))
    }

    pub(crate) fn counter(
        &self,
        name: &str,
        label_names: &[&str],
        sample_rate: f64,
    ) -> Result<PushCounter, MetricError> {
        let family = self.family(name, label_names, Kind::Counter, sample_rate)?;
        Ok(PushCounter(Handle::made(family)))
    }

    pub(crate) fn gauge(&self, name: &str, label_names: &[&str]) -> Result<PushGauge, MetricError> {
        let family = self.family(name, label_names, Kind::Gauge, 1.0)?;
        Ok(PushGauge(Handle::made(family)))
    }

    pub(crate) fn histogram(
        &self,
        name: &str,
        label_names: &[&str],
        statsd_type: &'static str,
        sample_rate: f64,
    ) -> Result<PushHistogram, MetricError> {
        let family = self.family(name, label_names, Kind::Histogram(statsd_type), sample_rate)?;
        Ok(PushHistogram(Handle::made(family)))
    }
}

impl Registry {
    fn flush(&self) {
        let series: Vec<Arc<Series>> = self
            .series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        self.pressure.pending_bytes.store(0, Ordering::Relaxed);
        let dropped = self.pressure.dropped.swap(0, Ordering::Relaxed);
        self.lost.fetch_add(dropped, Ordering::Relaxed);
        let now = SystemTime::now();
        let mut lines = Vec::new();
        for s in &series {
            if !s.dirty.swap(false, Ordering::Acquire) {
                continue;
            }
            match s.kind {
                Kind::Counter => {
                    let sum = f64::from_bits(s.value.swap(0f64.to_bits(), Ordering::Relaxed));
                    self.format.write(&mut lines, s, Reading::Counter(sum), now);
                }
                Kind::Gauge => {
                    let value = f64::from_bits(s.value.load(Ordering::Relaxed));
                    self.format.write(&mut lines, s, Reading::Gauge(value), now);
                }
                Kind::Histogram(_) => {
                    let values = std::mem::take(
                        &mut *s
                            .observations
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner),
                    );
                    if !values.is_empty() {
                        self.format
                            .write(&mut lines, s, Reading::Histogram(&values), now);
                    }
                }
            }
        }
        // Forget the series nothing holds but the registry and that have nothing to send: a
        // label value seen once is not kept for ever. A handle made later makes it anew.
        drop(series);
        self.series
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|_, s| Arc::strong_count(s) > 1 || s.dirty.load(Ordering::Acquire));
        if lines.is_empty() {
            return;
        }
        let lost = self
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .send(&lines);
        self.lost.fetch_add(lost as u64, Ordering::Relaxed);
    }
}

fn flush_loop(registry: &Weak<Registry>, wake: &Wake, interval: Duration) {
    loop {
        {
            let early = wake.early.lock().unwrap_or_else(PoisonError::into_inner);
            let (mut early, _) = wake
                .signal
                .wait_timeout_while(early, interval, |early| !*early)
                .unwrap_or_else(PoisonError::into_inner);
            *early = false;
        }
        match registry.upgrade() {
            Some(registry) => registry.flush(),
            None => return,
        }
    }
}

/// A metric as declared: what its series share.
struct Family {
    registry: Arc<Registry>,
    name: String,
    label_names: Vec<String>,
    kind: Kind,
    sample_rate: f64,
}

impl Family {
    fn series(&self, label_values: &[&str]) -> Arc<Series> {
        let key = (
            self.name.clone(),
            label_values
                .iter()
                .map(|v| (*v).to_owned())
                .collect::<Vec<_>>(),
        );
        let mut all = self
            .registry
            .series
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(all.entry(key).or_insert_with(|| {
            Arc::new(Series {
                name: self.name.clone(),
                labels: self
                    .label_names
                    .iter()
                    .cloned()
                    .zip(label_values.iter().map(|v| (*v).to_owned()))
                    .collect(),
                kind: self.kind,
                sample_rate: self.sample_rate,
                value: AtomicU64::new(0f64.to_bits()),
                dirty: AtomicBool::new(false),
                observations: Mutex::new(Vec::new()),
                pressure: Arc::clone(&self.registry.pressure),
            })
        }))
    }
}

/// A metric handle: the family as declared (in the metric as made) and the series it updates.
#[derive(Clone)]
struct Handle {
    family: Option<Arc<Family>>,
    series: Arc<Series>,
}

impl Handle {
    /// The metric as made updates the series whose labels are all `unknown` (as go-kit does).
    fn made(family: Arc<Family>) -> Handle {
        let unknown = vec!["unknown"; family.label_names.len()];
        Handle {
            series: family.series(&unknown),
            family: Some(family),
        }
    }

    fn with(&self, label_values: &[&str]) -> Result<Handle, MetricError> {
        let family = self
            .family
            .as_ref()
            .ok_or_else(|| MetricError::AlreadyLabelled {
                metric: self.series.name.clone(),
            })?;
        check_arity(&family.name, family.label_names.len(), label_values)?;
        Ok(Handle {
            series: family.series(label_values),
            family: None,
        })
    }

    /// Whether this observation is kept, for a sample rate under 1.
    fn sampled(&self) -> bool {
        self.series.sample_rate >= 1.0 || random_unit() < self.series.sample_rate
    }
}

/// A uniform number in [0, 1) from a per-thread xorshift generator: sampling needs speed, not
/// cryptographic quality.
fn random_unit() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let seed = std::collections::hash_map::RandomState::new();
            std::hash::BuildHasher::hash_one(&seed, std::thread::current().id()) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// A counter of a push backend (StatsD, DogStatsD, Influx, Graphite).
#[derive(Clone)]
pub struct PushCounter(Handle);

/// A gauge of a push backend.
#[derive(Clone)]
pub struct PushGauge(Handle);

/// A histogram (a timing, for StatsD) of a push backend.
#[derive(Clone)]
pub struct PushHistogram(Handle);

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let labels: Vec<String> = self
            .series
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        f.debug_struct("PushMetric")
            .field("name", &self.series.name)
            .field("labels", &labels)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PushCounter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::fmt::Debug for PushGauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::fmt::Debug for PushHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Counter for PushCounter {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        self.0.with(label_values).map(PushCounter)
    }

    fn add(&self, delta: f64) {
        if delta.is_nan() || delta < 0.0 || !self.0.sampled() {
            return;
        }
        self.0.series.update(|sum| sum + delta);
    }
}

impl Gauge for PushGauge {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        self.0.with(label_values).map(PushGauge)
    }

    fn set(&self, value: f64) {
        self.0.series.update(|_| value);
    }

    fn add(&self, delta: f64) {
        self.0.series.update(|v| v + delta);
    }
}

impl Histogram for PushHistogram {
    fn with(&self, label_values: &[&str]) -> Result<Self, MetricError> {
        self.0.with(label_values).map(PushHistogram)
    }

    fn observe(&self, value: f64) {
        if !self.0.sampled() {
            return;
        }
        let series = &self.0.series;
        // Durations are observed in seconds everywhere in kit-metrics (Timer, Metrics);
        // a StatsD timing is sent in milliseconds.
        let value = match series.kind {
            Kind::Histogram("ms") => value * 1000.0,
            _ => value,
        };
        {
            let mut observations = series
                .observations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if observations.len() >= MAX_OBSERVATIONS {
                // The flush is behind (a sink that is down holds it up): drop, and count.
                drop(observations);
                series.pressure.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            observations.push(value);
        }
        series.dirty.store(true, Ordering::Release);
        // Roughly one line per observation: wake the flusher once a datagram's worth is waiting.
        let pressure = &series.pressure;
        let line = series.name.len() + 16;
        let pending = pressure.pending_bytes.fetch_add(line, Ordering::Relaxed) + line;
        if pending >= pressure.mtu && pending - line < pressure.mtu {
            *pressure
                .wake
                .early
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = true;
            pressure.wake.signal.notify_one();
        }
    }
}

/// Formats a number the way line protocols read it: integers without a fraction, others in
/// the shortest form that reads back the same.
pub(crate) fn number(out: &mut String, value: f64) {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        let _ = write!(out, "{}", value as i64);
    } else {
        let _ = write!(out, "{value:?}");
    }
}

/// Lines packed into UDP datagrams of at most `mtu` bytes; a line longer than that is lost (a
/// datagram that large would be fragmented or dropped on the way).
pub(crate) struct UdpSink {
    socket: std::net::UdpSocket,
    mtu: usize,
}

impl UdpSink {
    /// A socket on an ephemeral local port, connected to `to`.
    pub(crate) fn connect(to: std::net::SocketAddr, mtu: usize) -> std::io::Result<UdpSink> {
        let local: std::net::SocketAddr = if to.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = std::net::UdpSocket::bind(local)?;
        socket.connect(to)?;
        Ok(UdpSink {
            socket,
            mtu: mtu.max(64),
        })
    }
}

impl Sink for UdpSink {
    fn send(&mut self, lines: &[String]) -> usize {
        let mut lost = 0;
        let mut datagram = String::with_capacity(self.mtu);
        let mut in_datagram = 0;
        for line in lines {
            if line.len() > self.mtu {
                lost += 1;
                continue;
            }
            if datagram.len() + line.len() > self.mtu {
                lost += self.send_datagram(&mut datagram, &mut in_datagram);
            }
            datagram.push_str(line);
            in_datagram += 1;
        }
        lost + self.send_datagram(&mut datagram, &mut in_datagram)
    }
}

impl UdpSink {
    /// Sends the datagram and empties it; returns the lines lost.
    fn send_datagram(&self, datagram: &mut String, lines: &mut usize) -> usize {
        let lost = match datagram.is_empty() || self.socket.send(datagram.as_bytes()).is_ok() {
            true => 0,
            false => *lines,
        };
        datagram.clear();
        *lines = 0;
        lost
    }
}

/// Summary fields of a histogram's observations: count, sum, min, max and quantiles.
pub(crate) fn summary(values: &[f64]) -> Vec<(&'static str, f64)> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return Vec::new();
    }
    sorted.sort_by(f64::total_cmp);
    vec![
        ("count", sorted.len() as f64),
        ("sum", sorted.iter().sum()),
        ("min", sorted[0]),
        ("max", sorted[sorted.len() - 1]),
        ("p50", crate::memory::quantile(&sorted, 0.50)),
        ("p90", crate::memory::quantile(&sorted, 0.90)),
        ("p95", crate::memory::quantile(&sorted, 0.95)),
        ("p99", crate::memory::quantile(&sorted, 0.99)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A sink that counts lines, and can be held shut (a server that does not answer).
    struct Held {
        lines: Arc<AtomicUsize>,
        open: Gate,
    }

    impl Sink for Held {
        fn send(&mut self, lines: &[String]) -> usize {
            let mut open = self.open.0.lock().unwrap();
            while !*open {
                open = self.open.1.wait(open).unwrap();
            }
            self.lines.fetch_add(lines.len(), Ordering::Relaxed);
            0
        }
    }

    /// Opens a held sink.
    type Gate = Arc<(Mutex<bool>, Condvar)>;

    struct Plain;

    impl LineFormat for Plain {
        fn write(&self, out: &mut Vec<String>, s: &Series, _: Reading<'_>, _: SystemTime) {
            out.push(format!("{}\n", s.name));
        }
    }

    fn emitter(open: bool, interval: Duration) -> (Emitter, Arc<AtomicUsize>, Gate) {
        let lines = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new((Mutex::new(open), Condvar::new()));
        let sink = Held {
            lines: Arc::clone(&lines),
            open: Arc::clone(&gate),
        };
        let options = PushOptions {
            flush_interval: interval,
            mtu: 1 << 20,
        };
        (Emitter::start("", Plain, sink, options), lines, gate)
    }

    fn series_count(emitter: &Emitter) -> usize {
        emitter.registry.series.lock().unwrap().len()
    }

    #[test]
    fn series_nothing_holds_are_forgotten_once_flushed() {
        let (emitter, lines, _) = emitter(true, Duration::from_secs(3600));
        let requests = emitter.counter("requests", &["path"], 1.0).unwrap();
        let held = requests.with(&["/kept"]).unwrap();
        held.add(1.0);
        for i in 0..1000 {
            requests.with(&[&format!("/p{i}")]).unwrap().add(1.0);
        }
        // The metric's own (unlabelled) series, the held one and the thousand passing ones.
        assert_eq!(series_count(&emitter), 1002);
        emitter.flush();
        assert_eq!(
            lines.load(Ordering::Relaxed),
            1001,
            "every series was sent first"
        );
        // Only the series handles hold are left; the held one still counts.
        assert_eq!(series_count(&emitter), 2);
        held.add(2.0);
        emitter.flush();
        assert_eq!(lines.load(Ordering::Relaxed), 1002);
    }

    #[test]
    fn observations_past_the_cap_are_dropped_and_counted_while_the_sink_is_stuck() {
        let (emitter, lines, gate) = emitter(false, Duration::from_secs(3600));
        let took = emitter.histogram("took", &[], "ms", 1.0).unwrap();
        // A flush stuck in the sink (on another thread), while observations keep coming.
        let stuck = {
            let emitter = emitter.clone();
            took.observe(0.5);
            let (started, has_started) = mpsc::channel();
            let handle = std::thread::spawn(move || {
                started.send(()).unwrap();
                emitter.flush();
            });
            has_started.recv().unwrap();
            handle
        };
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..(MAX_OBSERVATIONS + 5000) {
            took.observe(0.001);
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        stuck.join().unwrap();
        emitter.flush();
        // The stuck flush sent the first line; then the cap kept 10,000 and counted 5,000.
        assert_eq!(lines.load(Ordering::Relaxed), 2);
        assert_eq!(emitter.lost(), 5000);
    }

    /// CPU time of the flush thread, from /proc.
    fn flush_thread_cpu() -> Duration {
        let mut ticks = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = task.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if comm.trim() != "kit-metrics-pus" && comm.trim() != "kit-metrics-push" {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        }
        Duration::from_millis(ticks * 10)
    }

    #[test]
    fn a_flush_interval_of_zero_does_not_spin() {
        let before = flush_thread_cpu();
        let (_emitter, _, _) = emitter(true, Duration::ZERO);
        std::thread::sleep(Duration::from_millis(500));
        // Spinning, the thread would have used about the whole 500 ms.
        let used = flush_thread_cpu() - before;
        assert!(
            used < Duration::from_millis(150),
            "the flush thread used {used:?}"
        );
    }
}

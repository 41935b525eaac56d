//! The InfluxDB line protocol over UDP or HTTP (go-kit's `influx`).
//!
//! Each flush writes one line per series: `measurement,tag=value count=3 <ns>` for counters
//! (the sum since the last flush), `value=` for gauges, and `count`, `sum`, `min`, `max`,
//! `p50`, `p90`, `p95`, `p99` for histograms (over the interval's observations). Tags come from
//! label pairs. Escaping follows the line protocol: backslash before `,` and space in
//! measurements, and before `,`, `=` and space in tag keys and values; the protocol has no
//! newlines in names or tags, so those become `_`, and it has no empty tag values, so such
//! tags are left out. Non-finite values are not written (the protocol rejects them).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::MetricError;
use crate::push::{
    Emitter, LineFormat, PushCounter, PushGauge, PushHistogram, PushOptions, Reading, Series, Sink,
    UdpSink, number, summary,
};

struct InfluxFormat;

fn escape(out: &mut String, text: &str, also: &[char]) {
    for c in text.chars() {
        match c {
            '\n' | '\r' => out.push('_'),
            c if c == '\\' || c == ',' || c == ' ' || also.contains(&c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
}

impl LineFormat for InfluxFormat {
    fn write(&self, out: &mut Vec<String>, series: &Series, reading: Reading<'_>, now: SystemTime) {
        let fields: Vec<(&str, f64)> = match reading {
            Reading::Counter(sum) => vec![("count", sum)],
            Reading::Gauge(value) => vec![("value", value)],
            Reading::Histogram(values) => summary(values),
        };
        let fields: Vec<(&str, f64)> = fields.into_iter().filter(|(_, v)| v.is_finite()).collect();
        if fields.is_empty() {
            return;
        }
        let mut line = String::new();
        escape(&mut line, &series.name, &[]);
        for (k, v) in &series.labels {
            if v.is_empty() {
                continue;
            }
            line.push(',');
            escape(&mut line, k, &['=']);
            line.push('=');
            escape(&mut line, v, &['=']);
        }
        for (i, (k, v)) in fields.iter().enumerate() {
            line.push(if i == 0 { ' ' } else { ',' });
            line.push_str(k);
            line.push('=');
            number(&mut line, *v);
        }
        let nanos = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        line.push_str(&format!(" {nanos}\n"));
        out.push(line);
    }
}

/// Lines POSTed to an InfluxDB write endpoint, one request per flush.
struct HttpSink {
    addr: SocketAddr,
    path: String,
    token: Option<String>,
}

impl HttpSink {
    fn post(&self, body: &str) -> io::Result<u16> {
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        let auth = self
            .token
            .as_ref()
            .map(|t| format!("Authorization: Token {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{auth}Connection: close\r\n\r\n",
            self.path,
            self.addr,
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        let mut status = [0u8; 12];
        stream.read_exact(&mut status)?;
        // "HTTP/1.1 204"
        std::str::from_utf8(&status[9..12])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other("not an HTTP response"))
    }
}

impl Sink for HttpSink {
    fn send(&mut self, lines: &[String]) -> usize {
        let body: String = lines.concat();
        match self.post(&body) {
            Ok(200..=299) => 0,
            _ => lines.len(),
        }
    }
}

/// An Influx backend: counters, gauges and histograms with tags, sent by a flush thread as line
/// protocol over UDP or HTTP. Cheap to clone; keep one alive while metrics are recorded.
#[derive(Clone)]
pub struct Influx {
    emitter: Emitter,
}

impl Influx {
    /// Sends over UDP to `to` (InfluxDB's UDP listener or Telegraf's `socket_listener`), in
    /// datagrams of at most the MTU; measurement names are prefixed with `prefix`.
    pub fn udp(prefix: &str, to: SocketAddr, options: PushOptions) -> io::Result<Influx> {
        let sink = UdpSink::connect(to, options.mtu)?;
        Ok(Influx {
            emitter: Emitter::start(prefix, InfluxFormat, sink, options),
        })
    }

    /// POSTs each flush to `path` on the HTTP server at `addr`: for InfluxDB 1.x
    /// `/write?db=mydb`, for 2.x `/api/v2/write?org=o&bucket=b` with a `token`.
    pub fn http(
        prefix: &str,
        addr: SocketAddr,
        path: &str,
        token: Option<&str>,
        options: PushOptions,
    ) -> Influx {
        let sink = HttpSink {
            addr,
            path: path.to_owned(),
            token: token.map(str::to_owned),
        };
        Influx {
            emitter: Emitter::start(prefix, InfluxFormat, sink, options),
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

    /// A histogram with `label_names`, written as summary fields each flush.
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

    /// Lines lost so far (failed sends, non-2xx answers, lines longer than the MTU).
    pub fn lost(&self) -> u64 {
        self.emitter.lost()
    }
}

impl std::fmt::Debug for Influx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Influx").finish_non_exhaustive()
    }
}

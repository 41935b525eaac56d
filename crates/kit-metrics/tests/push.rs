//! The push backends against real sockets: a UDP listener for StatsD, DogStatsD and Influx, an
//! HTTP listener for Influx's write endpoint and a TCP listener for Graphite, each reading what
//! arrives with a test-side parser of the public wire format.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use kit_metrics::graphite::Graphite;
use kit_metrics::influx::Influx;
use kit_metrics::statsd::{DogStatsd, Statsd};
use kit_metrics::{Counter, Gauge, Histogram, MetricError, PushOptions};

/// Flushes only when the test says so, or on size.
fn manual(mtu: usize) -> PushOptions {
    PushOptions {
        flush_interval: Duration::from_secs(3600),
        mtu,
    }
}

fn udp_listener() -> (UdpSocket, SocketAddr) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let addr = socket.local_addr().unwrap();
    (socket, addr)
}

/// The datagrams that arrive: the first within `wait`, each next within 300 ms of the last.
fn datagrams(socket: &UdpSocket, wait: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    socket.set_read_timeout(Some(wait)).unwrap();
    while let Ok(n) = socket.recv(&mut buf) {
        out.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        socket
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
    }
    out
}

/// A StatsD line: name, value, type, sample rate, tags.
#[derive(Debug, PartialEq)]
struct StatsdLine {
    name: String,
    value: f64,
    kind: String,
    rate: Option<f64>,
    tags: Vec<(String, String)>,
}

fn parse_statsd(line: &str) -> StatsdLine {
    let (name, rest) = line
        .split_once(':')
        .unwrap_or_else(|| panic!("no ':' in {line:?}"));
    let mut parts = rest.split('|');
    let value = parts
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{line:?}: {e}"));
    let kind = parts.next().unwrap().to_owned();
    let (mut rate, mut tags) = (None, Vec::new());
    for part in parts {
        if let Some(r) = part.strip_prefix('@') {
            rate = Some(r.parse().unwrap());
        } else if let Some(t) = part.strip_prefix('#') {
            tags = t
                .split(',')
                .map(|kv| {
                    let (k, v) = kv.split_once(':').unwrap();
                    (k.to_owned(), v.to_owned())
                })
                .collect();
        } else {
            panic!("unknown part {part:?} in {line:?}");
        }
    }
    StatsdLine {
        name: name.to_owned(),
        value,
        kind,
        rate,
        tags,
    }
}

fn lines(datagrams: &[String]) -> Vec<String> {
    datagrams
        .iter()
        .flat_map(|d| d.lines().map(str::to_owned))
        .collect()
}

#[test]
fn statsd_sends_aggregated_counters_gauges_and_every_timing() {
    let (socket, addr) = udp_listener();
    let statsd = Statsd::new("svc.", addr, manual(1432)).unwrap();
    let sums = statsd.counter("sums", 1.0).unwrap();
    let depth = statsd.gauge("depth").unwrap();
    let took = statsd.timing("took", 1.0).unwrap();
    sums.add(1.0);
    sums.add(2.5);
    sums.add(f64::NAN);
    sums.add(-4.0);
    depth.set(5.0);
    depth.add(-7.5);
    // Seconds in, milliseconds on the wire.
    took.observe(0.25);
    took.observe(0.015625);
    statsd.flush();
    let got: Vec<StatsdLine> = lines(&datagrams(&socket, Duration::from_millis(500)))
        .iter()
        .map(|l| parse_statsd(l))
        .collect();
    let find = |name: &str| got.iter().filter(|l| l.name == name).collect::<Vec<_>>();
    assert_eq!(find("svc.sums").len(), 1);
    assert_eq!(
        (find("svc.sums")[0].value, find("svc.sums")[0].kind.as_str()),
        (3.5, "c")
    );
    assert_eq!(
        (
            find("svc.depth")[0].value,
            find("svc.depth")[0].kind.as_str()
        ),
        (-2.5, "g")
    );
    let timings: Vec<f64> = find("svc.took").iter().map(|l| l.value).collect();
    assert_eq!(timings, [250.0, 15.625]);

    // Nothing changed since: nothing is sent. A NaN gauge is not sent either.
    depth.set(f64::NAN);
    statsd.flush();
    assert!(datagrams(&socket, Duration::from_millis(300)).is_empty());
    // StatsD has no labels: metrics take none.
    assert!(matches!(
        sums.with(&["x"]),
        Err(MetricError::LabelArity { .. })
    ));
}

#[test]
fn statsd_sampling_keeps_a_share_and_tells_the_server() {
    let (socket, addr) = udp_listener();
    let statsd = Statsd::new("", addr, manual(1432)).unwrap();
    let sampled = statsd.counter("hits", 0.5).unwrap();
    for _ in 0..2000 {
        sampled.add(1.0);
    }
    statsd.flush();
    let got = parse_statsd(&lines(&datagrams(&socket, Duration::from_millis(500)))[0]);
    assert_eq!(got.rate, Some(0.5));
    // About half are kept (binomial: outside 800..1200 has odds below 1e-18).
    assert!((800.0..1200.0).contains(&got.value), "{got:?}");
    assert!(matches!(
        statsd.counter("bad", 0.0),
        Err(MetricError::InvalidName { .. })
    ));
    assert!(matches!(
        statsd.counter("bad", 1.5),
        Err(MetricError::InvalidName { .. })
    ));
}

#[test]
fn lines_are_batched_into_datagrams_no_larger_than_the_mtu() {
    let (socket, addr) = udp_listener();
    let statsd = Statsd::new("kit.", addr, manual(120)).unwrap();
    let took = statsd.timing("request_duration", 1.0).unwrap();
    for i in 0..50 {
        took.observe(f64::from(i) / 1000.0);
    }
    statsd.flush();
    let got = datagrams(&socket, Duration::from_millis(500));
    assert!(got.len() > 1, "{got:?}");
    assert!(got.iter().all(|d| d.len() <= 120), "{got:?}");
    assert!(
        got.iter().all(|d| d.ends_with('\n')),
        "a line was split: {got:?}"
    );
    let values: Vec<f64> = lines(&got).iter().map(|l| parse_statsd(l).value).collect();
    let want: Vec<f64> = (0..50).map(|i| f64::from(i) / 1000.0 * 1000.0).collect();
    assert_eq!(values, want);
    assert_eq!(statsd.lost(), 0);
}

#[test]
fn pending_observations_past_the_mtu_are_flushed_without_waiting_for_the_interval() {
    let (socket, addr) = udp_listener();
    let statsd = Statsd::new("", addr, manual(200)).unwrap();
    let took = statsd.timing("t", 1.0).unwrap();
    for i in 0..40 {
        took.observe(f64::from(i));
    }
    // No flush() call: the size trigger sends within the read timeout.
    let got = datagrams(&socket, Duration::from_secs(10));
    assert!(!got.is_empty(), "nothing was sent on size");
}

#[test]
fn dogstatsd_writes_tags_from_label_pairs_and_cleans_reserved_characters() {
    let (socket, addr) = udp_listener();
    let dog = DogStatsd::new("svc.", addr, manual(1432)).unwrap();
    let requests = dog.counter("requests", &["method", "note"], 1.0).unwrap();
    requests.with(&["sum", "a|b,c#d:e\nf"]).unwrap().add(1.0);
    let sizes = dog.histogram("sizes", &["method"], 1.0).unwrap();
    sizes.with(&["concat"]).unwrap().observe(7.0);
    let spread = dog.distribution("spread", &[], 1.0).unwrap();
    spread.observe(0.5);
    dog.flush();
    let mut got: Vec<StatsdLine> = lines(&datagrams(&socket, Duration::from_millis(500)))
        .iter()
        .map(|l| parse_statsd(l))
        .collect();
    got.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0].name, "svc.requests");
    assert_eq!(
        got[0].tags,
        [
            ("method".into(), "sum".into()),
            ("note".into(), "a_b_c_d:e_f".into())
        ]
    );
    assert_eq!(
        (got[1].name.as_str(), got[1].kind.as_str()),
        ("svc.sizes", "h")
    );
    assert_eq!(got[1].tags, [("method".into(), "concat".into())]);
    assert_eq!((got[2].kind.as_str(), got[2].value), ("d", 0.5));
}

/// An Influx line: measurement, tags, fields, timestamp (escapes undone).
type InfluxLine = (String, Vec<(String, String)>, Vec<(String, f64)>, u128);

fn parse_influx(line: &str) -> InfluxLine {
    // Split on unescaped separators.
    fn split(s: &str, sep: char) -> Vec<String> {
        let (mut out, mut cur, mut esc) = (Vec::new(), String::new(), false);
        for c in s.chars() {
            match (esc, c) {
                (true, c) => {
                    cur.push(c);
                    esc = false;
                }
                (false, '\\') => esc = true,
                (false, c) if c == sep => out.push(std::mem::take(&mut cur)),
                (false, c) => cur.push(c),
            }
        }
        out.push(cur);
        out
    }
    // Re-escape to split sections on unescaped spaces only.
    let mut sections = Vec::new();
    let (mut cur, mut esc) = (String::new(), false);
    for c in line.chars() {
        if !esc && c == ' ' {
            sections.push(std::mem::take(&mut cur));
            continue;
        }
        esc = !esc && c == '\\';
        cur.push(c);
    }
    sections.push(cur);
    assert_eq!(sections.len(), 3, "{line:?}");
    let key: Vec<String> = {
        let (mut parts, mut cur, mut esc) = (Vec::new(), String::new(), false);
        for c in sections[0].chars() {
            if !esc && c == ',' {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            esc = !esc && c == '\\';
            cur.push(c);
        }
        parts.push(cur);
        parts
    };
    let measurement = split(&key[0], '\u{0}').remove(0);
    let tags = key[1..]
        .iter()
        .map(|kv| {
            let parts = split(kv, '=');
            (parts[0].clone(), parts[1].clone())
        })
        .collect();
    let fields = sections[1]
        .split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect();
    (measurement, tags, fields, sections[2].parse().unwrap())
}

#[test]
fn influx_over_udp_escapes_names_and_tags_and_summarises_histograms() {
    let (socket, addr) = udp_listener();
    // The prefix is written verbatim, so it carries the characters measurements escape.
    let influx = Influx::udp("kit, ", addr, manual(1432)).unwrap();
    let counter = influx.counter("req_count", &["method", "note"]).unwrap();
    counter.with(&["sum", "a b,c=d"]).unwrap().add(3.0);
    let took = influx
        .histogram("took", &["method"])
        .unwrap()
        .with(&["concat"])
        .unwrap();
    for v in 1..=100 {
        took.observe(f64::from(v));
    }
    took.observe(f64::NAN);
    let empty_tag = influx.gauge("depth", &["zone"]).unwrap();
    empty_tag.with(&[""]).unwrap().set(2.0);
    influx.flush();
    let mut got: Vec<_> = lines(&datagrams(&socket, Duration::from_millis(500)))
        .iter()
        .map(|l| parse_influx(l))
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), 3, "{got:?}");
    let (m, tags, fields, ts) = &got[0];
    assert_eq!(m, "kit, depth");
    assert!(tags.is_empty(), "empty tag values are left out: {tags:?}");
    assert_eq!(fields, &[("value".to_owned(), 2.0)]);
    assert!(*ts > 1_700_000_000_000_000_000, "{ts}");
    let (m, tags, fields, _) = &got[1];
    assert_eq!(m, "kit, req_count");
    assert_eq!(
        tags,
        &[
            ("method".into(), "sum".into()),
            ("note".into(), "a b,c=d".into())
        ]
    );
    assert_eq!(fields, &[("count".to_owned(), 3.0)]);
    let (m, _, fields, _) = &got[2];
    assert_eq!(m, "kit, took");
    let field = |k: &str| fields.iter().find(|(n, _)| n == k).unwrap().1;
    assert_eq!(
        (field("count"), field("sum"), field("min"), field("max")),
        (100.0, 5050.0, 1.0, 100.0)
    );
    assert_eq!(
        (field("p50"), field("p90"), field("p99")),
        (50.0, 90.0, 99.0)
    );
}

/// Accepts one HTTP request, answers `status`, and returns the request head and body.
fn http_once(listener: &TcpListener, status: &str) -> (String, String) {
    let (stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    let mut stream = reader.into_inner();
    let _ = stream.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    (head, String::from_utf8(body).unwrap())
}

#[test]
fn influx_over_http_posts_each_flush_and_counts_refused_writes() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let influx = Influx::http(
        "",
        addr,
        "/api/v2/write?org=o&bucket=b",
        Some("secret"),
        manual(1432),
    );
    let c = influx.counter("sums", &[]).unwrap();
    c.add(2.0);
    let server = std::thread::spawn(move || {
        let first = http_once(&listener, "204 No Content");
        let second = http_once(&listener, "500 Internal Server Error");
        (first, second)
    });
    influx.flush();
    c.add(1.0);
    influx.flush();
    let ((head, body), (_, body2)) = server.join().unwrap();
    assert!(
        head.starts_with("POST /api/v2/write?org=o&bucket=b HTTP/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("Authorization: Token secret\r\n"), "{head}");
    assert_eq!(parse_influx(body.trim_end()).2, [("count".to_owned(), 2.0)]);
    assert_eq!(
        parse_influx(body2.trim_end()).2,
        [("count".to_owned(), 1.0)]
    );
    assert_eq!(influx.lost(), 1, "the refused write is counted");
}

#[test]
fn graphite_writes_tagged_lines_and_reconnects_after_the_server_comes_back() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let graphite = Graphite::new("svc.", addr, manual(1432));
    let sums = graphite
        .counter("sums", &["method"])
        .unwrap()
        .with(&["sum;x y"])
        .unwrap();
    let took = graphite.histogram("took", &[]).unwrap();
    sums.add(4.0);
    took.observe(2.0);
    took.observe(4.0);
    graphite.flush();
    let (stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut got = Vec::new();
    for _ in 0..9 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        got.push(line);
    }
    got.sort();
    let parse = |l: &str| -> (String, f64) {
        let parts: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(parts.len(), 3, "{l:?}");
        assert!(parts[2].parse::<u64>().unwrap() > 1_700_000_000);
        (parts[0].to_owned(), parts[1].parse().unwrap())
    };
    let got: Vec<(String, f64)> = got.iter().map(|l| parse(l)).collect();
    assert!(
        got.contains(&("svc.sums;method=sum_x_y".to_owned(), 4.0)),
        "{got:?}"
    );
    assert!(got.contains(&("svc.took.count".to_owned(), 2.0)), "{got:?}");
    assert!(got.contains(&("svc.took.sum".to_owned(), 6.0)), "{got:?}");
    assert!(got.contains(&("svc.took.p99".to_owned(), 4.0)), "{got:?}");

    // The server goes away: flushes fail (and are counted) until it is back on the same port.
    drop(reader);
    drop(listener);
    let deadline = Instant::now() + Duration::from_secs(30);
    while graphite.lost() == 0 {
        assert!(
            Instant::now() < deadline,
            "a dead connection was never noticed"
        );
        sums.add(1.0);
        graphite.flush();
        std::thread::sleep(Duration::from_millis(20));
    }
    let listener = TcpListener::bind(addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let stream = loop {
        assert!(Instant::now() < deadline, "no reconnection");
        sums.add(1.0);
        graphite.flush();
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    assert!(line.starts_with("svc.sums;method=sum_x_y "), "{line:?}");
}

#[test]
fn a_timer_on_a_statsd_timing_reports_milliseconds() {
    let (socket, addr) = udp_listener();
    let statsd = Statsd::new("", addr, manual(1432)).unwrap();
    let took = statsd.timing("took", 1.0).unwrap();
    let timer = kit_metrics::Timer::start(took);
    std::thread::sleep(Duration::from_millis(30));
    let seconds = timer.observe_duration();
    statsd.flush();
    let got: Vec<StatsdLine> = lines(&datagrams(&socket, Duration::from_millis(500)))
        .iter()
        .map(|l| parse_statsd(l))
        .collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, "ms");
    // 30 ms and more, in milliseconds: not 0.03.
    assert!(got[0].value >= 30.0, "{:?}", got[0].value);
    assert!(
        (got[0].value - seconds * 1000.0).abs() < 1e-6,
        "{} vs {seconds}",
        got[0].value
    );
}

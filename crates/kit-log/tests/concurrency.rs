//! Concurrent records through one encoder never interleave, even when the writer takes each
//! line in many small pieces.

mod support;

use std::sync::Arc;

use slog::{Drain, Logger, info, o};
use support::{Captured, parse_logfmt};

const THREADS: usize = 8;
const RECORDS: usize = 300;

#[test]
fn many_threads_produce_only_whole_lines() {
    // Three bytes per write: a line is written in a dozen or more calls, so without the
    // per-record lock, lines from different threads would mix.
    let out = Captured::trickling(3);
    let log = Logger::root(kit_log::Logfmt::new(out.clone()).fuse(), o!());
    let log = Arc::new(log);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for n in 0..RECORDS {
                    info!(log, "tick"; "thread" => t, "n" => n, "pad" => "x y z");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = out.text();
    let mut seen = vec![Vec::new(); THREADS];
    for line in text.lines() {
        let pairs = parse_logfmt(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["level", "msg", "thread", "n", "pad"], "{line:?}");
        let t: usize = pairs[2].1.parse().unwrap();
        seen[t].push(pairs[3].1.parse::<usize>().unwrap());
    }
    // Every record of every thread, each once, in its thread's order.
    for (t, ns) in seen.iter().enumerate() {
        assert_eq!(*ns, (0..RECORDS).collect::<Vec<_>>(), "thread {t}");
    }
}

#[test]
fn json_lines_from_many_threads_are_each_valid() {
    let out = Captured::trickling(5);
    let log = Arc::new(Logger::root(kit_log::Json::new(out.clone()).fuse(), o!()));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for n in 0..200 {
                    info!(log, "tick"; "thread" => t, "n" => n);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let text = out.text();
    assert_eq!(text.lines().count(), 800);
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

//! Lazy values: the caller is the log statement's own place through contexts and filters; the
//! timestamp is RFC 3339 UTC with nanoseconds, evaluated per record.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kit_log::{FnValue, Level, LevelFilter, Rfc3339, caller, timestamp_utc};
use slog::{Drain, Logger, info, o, warn};
use support::{Captured, parse_logfmt};

fn value_of(line: &str, key: &str) -> String {
    parse_logfmt(line)
        .unwrap()
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        .1
}

#[test]
fn the_caller_is_the_log_statement_through_contexts_and_a_level_filter() {
    let out = Captured::default();
    let drain = LevelFilter::new(kit_log::Logfmt::new(out.clone()), Level::Info).ignore_res();
    let root = Logger::root(drain, o!("caller" => caller()));
    // Two more layers of context between the statement and the root that holds the valuer.
    let child = root.new(o!("a" => 1)).new(o!("b" => 2));
    let first = line!() + 1;
    info!(child, "one");
    fn helper(log: &Logger) -> u32 {
        let line = line!() + 1;
        warn!(log, "two");
        line
    }
    let second = helper(&child);
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(value_of(lines[0], "caller"), format!("{}:{first}", file!()));
    assert_eq!(
        value_of(lines[1], "caller"),
        format!("{}:{second}", file!())
    );
}

#[test]
fn a_user_closure_is_evaluated_at_each_record() {
    let out = Captured::default();
    let counter = std::sync::atomic::AtomicUsize::new(0);
    let counter = std::sync::Arc::new(counter);
    let c = std::sync::Arc::clone(&counter);
    let log = Logger::root(
        kit_log::Logfmt::new(out.clone()).fuse(),
        o!("seq" => FnValue(move |_| c.fetch_add(1, std::sync::atomic::Ordering::SeqCst))),
    );
    info!(log, "a");
    info!(log, "b");
    let text = out.text();
    let seqs: Vec<String> = text.lines().map(|l| value_of(l, "seq")).collect();
    assert_eq!(seqs, ["0", "1"]);
}

#[test]
fn timestamps_are_rfc3339_utc_with_nanoseconds() {
    let at = |secs: u64, nanos: u32| Rfc3339(UNIX_EPOCH + Duration::new(secs, nanos)).to_string();
    assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000000Z");
    assert_eq!(at(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
    assert_eq!(
        at(1_709_251_199, 999_999_999),
        "2024-02-29T23:59:59.999999999Z"
    );
    assert_eq!(at(4_107_542_400, 0), "2100-03-01T00:00:00.000000000Z");
    assert_eq!(at(253_402_300_799, 0), "9999-12-31T23:59:59.000000000Z");
    // Before the epoch: written as the epoch rather than failing.
    let before = Rfc3339(UNIX_EPOCH - Duration::from_secs(1)).to_string();
    assert_eq!(before, "1970-01-01T00:00:00.000000000Z");
}

#[test]
fn every_day_of_four_centuries_matches_a_simple_calendar() {
    // A slow, obviously right calendar walk against the fast era arithmetic.
    let (mut y, mut m, mut d) = (1970u64, 1u64, 1u64);
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let month_len = |y: u64, m: u64| match m {
        2 if leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    for day in 0..146_097u64 {
        let want = format!("{y:04}-{m:02}-{d:02}T00:00:00.000000000Z");
        assert_eq!(
            Rfc3339(UNIX_EPOCH + Duration::from_secs(day * 86_400)).to_string(),
            want
        );
        d += 1;
        if d > month_len(y, m) {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
}

#[test]
fn the_timestamp_value_is_now_for_each_record() {
    let out = Captured::default();
    let log = Logger::root(
        kit_log::Logfmt::new(out.clone()).fuse(),
        o!("ts" => timestamp_utc()),
    );
    let before = SystemTime::now();
    info!(log, "x");
    let after = SystemTime::now();
    let ts = value_of(out.text().lines().next().unwrap(), "ts");
    // The written stamp lies between two readings of the clock taken around the call.
    let lo = Rfc3339(before).to_string();
    let hi = Rfc3339(after).to_string();
    assert!(lo <= ts && ts <= hi, "{lo} <= {ts} <= {hi}");
    assert_eq!(ts.len(), "2026-11-24T16:20:01.123456789Z".len());
}

//! The go-kit-style Logger: alternating keys and values, (MISSING) for an odd count, context
//! with `with`, `with_prefix` and `with_suffix` in go-kit's order, the caller through all of it,
//! and the verdict of a level filter handed back to the caller.

mod support;

use kit_log::{Json, Level, LevelFilter, Logfmt, Logger, Verdict, caller, kv, timestamp_utc};
use slog::{Drain, o};
use support::{Captured, parse_logfmt};

fn logfmt() -> (Logger, Captured) {
    let out = Captured::default();
    (Logger::new(Logfmt::new(out.clone()).ignore_res()), out)
}

fn keys(line: &str) -> Vec<String> {
    parse_logfmt(line)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn alternating_keys_and_values_make_a_record_without_level() {
    let (logger, out) = logfmt();
    let verdict = kit_log::log!(
        logger,
        "question",
        "what is the meaning of life?",
        "answer",
        42
    );
    assert_eq!(verdict, Verdict::Logged);
    assert_eq!(
        out.text(),
        "question=\"what is the meaning of life?\" answer=42\n"
    );
}

#[test]
fn an_odd_count_gives_the_last_key_missing() {
    let (logger, out) = logfmt();
    kit_log::log!(logger, "a", 1, "b");
    kit_log::log!(logger, "c",);
    let logger = logger.with(kv!("k"));
    kit_log::log!(logger);
    assert_eq!(out.text(), "a=1 b=(MISSING)\nc=(MISSING)\nk=(MISSING)\n");
}

#[test]
fn levelled_macros_write_the_level_first() {
    let (logger, out) = logfmt();
    let logger = logger.with(kv!("svc", "add"));
    kit_log::debug!(logger, "msg", "d");
    kit_log::info!(logger, "msg", "i");
    kit_log::warn!(logger, "msg", "w", "n", 1.5);
    kit_log::error!(logger, "err", format_args!("{}:{}", "x", 1));
    assert_eq!(
        out.text(),
        "level=debug svc=add msg=d\nlevel=info svc=add msg=i\n\
         level=warn svc=add msg=w n=1.5\nlevel=error svc=add err=x:1\n"
    );
}

#[test]
fn prefix_context_own_pairs_and_suffix_keep_go_kits_order() {
    let (logger, out) = logfmt();
    let logger = logger
        .with(kv!("c1", 1))
        .with_suffix(kv!("s1", 1))
        .with_prefix(kv!("p1", 1))
        .with(kv!("c2", 2, "c3", 3))
        .with_prefix(o!("p2" => 2))
        .with_suffix(kv!("s2", 2, "s3", 3));
    kit_log::info!(logger, "r1", 1, "r2", 2);
    let text = out.text();
    assert_eq!(
        keys(text.trim_end()),
        [
            "level", "p2", "p1", "c1", "c2", "c3", "r1", "r2", "s1", "s2", "s3"
        ]
    );
}

#[test]
fn a_parent_logger_is_unchanged_by_its_children() {
    let (root, out) = logfmt();
    let _child = root
        .with(kv!("c", 1))
        .with_prefix(kv!("p", 1))
        .with_suffix(kv!("s", 1));
    kit_log::log!(root, "k", "v");
    assert_eq!(out.text(), "k=v\n");
}

#[test]
fn the_caller_is_the_log_statement_through_with_and_a_level_filter() {
    let out = Captured::default();
    let drain = LevelFilter::new(Logfmt::new(out.clone()).ignore_res(), Level::Info);
    let logger = Logger::new(drain)
        .with(kv!("caller", caller()))
        .with_prefix(kv!("p", 1))
        .with(kv!("c", 2));
    let line = line!() + 1;
    kit_log::info!(logger, "msg", "here");
    let text = out.text();
    let pairs = parse_logfmt(text.trim_end()).unwrap();
    let caller = &pairs.iter().find(|(k, _)| k == "caller").unwrap().1;
    assert_eq!(caller, &format!("{}:{line}", file!()));
}

#[test]
fn lazy_context_values_are_evaluated_at_each_call_that_is_written() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let out = Captured::default();
    let drain = LevelFilter::new(Logfmt::new(out.clone()).ignore_res(), Level::Info);
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let logger = Logger::new(drain).with(kv!(
        "n",
        kit_log::FnValue(move |_| counter.fetch_add(1, Ordering::SeqCst))
    ));
    kit_log::info!(logger, "k", 1);
    kit_log::debug!(logger, "k", 2);
    kit_log::warn!(logger, "k", 3);
    assert_eq!(out.text(), "level=info n=0 k=1\nlevel=warn n=1 k=3\n");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // The same through the suffix.
    let suffixed = logger.with_suffix(kv!("ts", timestamp_utc()));
    kit_log::info!(suffixed, "k", 4);
    assert!(
        out.text()
            .lines()
            .last()
            .unwrap()
            .starts_with("level=info n=2 k=4 ts=20")
    );
}

#[test]
fn the_level_filter_verdict_reaches_the_caller() {
    let out = Captured::default();
    let drain =
        LevelFilter::new(Logfmt::new(out.clone()).ignore_res(), Level::Warn).squelch_no_level(true);
    let logger = Logger::new(drain);
    assert_eq!(kit_log::info!(logger, "k", 1), Verdict::NotAllowed);
    assert_eq!(kit_log::log!(logger, "k", 2), Verdict::NotAllowed);
    assert_eq!(kit_log::warn!(logger, "k", 3), Verdict::Logged);
    assert_eq!(out.text(), "level=warn k=3\n");
}

#[test]
fn json_gets_the_same_pairs() {
    let out = Captured::default();
    let logger = Logger::new(Json::new(out.clone()).ignore_res())
        .with(kv!("c", "x"))
        .with_suffix(kv!("s", true));
    kit_log::error!(logger, "err", "boom", "odd");
    assert_eq!(
        out.text(),
        "{\"level\":\"error\",\"c\":\"x\",\"err\":\"boom\",\"odd\":\"(MISSING)\",\"s\":true}\n"
    );
}

#[test]
fn slog_macros_share_the_drain_and_context() {
    let (logger, out) = logfmt();
    let logger = logger
        .with_prefix(kv!("p", 1))
        .with(kv!("c", 2))
        .with_suffix(kv!("s", 3));
    let slog = logger.slog();
    slog::info!(slog, "hello"; "r" => 4);
    assert_eq!(out.text(), "level=info p=1 c=2 s=3 msg=hello r=4\n");
}

//! The JSON encoder: one valid object per line, same order as logfmt, exact escaping.

mod support;

use serde_json::Value;
use slog::{Drain, Logger, error, info, o};
use support::Captured;

fn logger(out: &Captured) -> Logger {
    Logger::root(kit_log::Json::new(out.clone()).fuse(), o!("svc" => "add"))
}

#[test]
fn one_object_per_line_in_go_kit_order() {
    let out = Captured::default();
    let log = logger(&out).new(o!("method" => "sum"));
    info!(log, "done"; "a" => 1, "b" => -2, "ok" => true, "f" => 0.25);
    assert_eq!(
        out.text(),
        "{\"level\":\"info\",\"svc\":\"add\",\"method\":\"sum\",\"msg\":\"done\",\"a\":1,\"b\":-2,\"ok\":true,\"f\":0.25}\n"
    );
}

#[test]
fn strings_control_characters_errors_and_non_finite_numbers_stay_valid_json() {
    let out = Captured::default();
    let log = logger(&out);
    let err = std::io::Error::other("bad \"input\"\n");
    let none: Option<&str> = None;
    error!(log, "tab\there {}", "\u{1}";
        "q" => "\"\\", "ctl" => "\u{0}\u{1f}", "nan" => f64::NAN, "inf" => f64::INFINITY,
        "ninf" => f32::NEG_INFINITY, "err" => #%err, "none" => none, "key \"x\"" => "v",
        "uni" => "ü\u{2028}",
    );
    let text = out.text();
    assert_eq!(text.lines().count(), 1);
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(v["msg"], "tab\there \u{1}");
    assert_eq!(v["q"], "\"\\");
    assert_eq!(v["ctl"], "\u{0}\u{1f}");
    assert_eq!(v["nan"], "NaN");
    assert_eq!(v["inf"], "+Inf");
    assert_eq!(v["ninf"], "-Inf");
    assert_eq!(v["err"], "bad \"input\"\n");
    assert_eq!(v["none"], Value::Null);
    assert_eq!(v["key \"x\""], "v");
    assert_eq!(v["uni"], "ü\u{2028}");
    assert!(text.contains("\\u0000\\u001f"), "{text}");
}

#[test]
fn a_record_without_a_level_has_only_its_pairs() {
    let out = Captured::default();
    let log = Logger::root(kit_log::Json::new(out.clone()).fuse(), o!());
    slog::log!(log, slog::Level::Info, kit_log::NO_LEVEL_TAG, ""; "k" => "v");
    assert_eq!(out.text(), "{\"k\":\"v\"}\n");
}

#[test]
fn a_record_with_nothing_is_an_empty_object() {
    let out = Captured::default();
    let log = Logger::root(kit_log::Json::new(out.clone()).fuse(), o!());
    slog::log!(log, slog::Level::Info, kit_log::NO_LEVEL_TAG, "");
    assert_eq!(out.text(), "{}\n");
}

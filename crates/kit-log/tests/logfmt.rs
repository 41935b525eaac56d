//! The logfmt encoder: exact output, quoting and escaping, order, one line per record.

mod support;

use slog::{Drain, Level as SlogLevel, Logger, debug, error, info, o, warn};
use support::{Captured, parse_logfmt};

fn logger(out: &Captured) -> Logger {
    Logger::root(kit_log::Logfmt::new(out.clone()).fuse(), o!())
}

#[test]
fn pairs_come_in_go_kit_order_level_context_msg_own() {
    let out = Captured::default();
    let root = Logger::root(
        kit_log::Logfmt::new(out.clone()).fuse(),
        o!("svc" => "add", "ver" => 2),
    );
    let child = root.new(o!("method" => "sum", "id" => 7));
    info!(child, "done"; "a" => 1, "b" => 2, "c" => 3);
    assert_eq!(
        out.text(),
        "level=info svc=add ver=2 method=sum id=7 msg=done a=1 b=2 c=3\n"
    );
}

#[test]
fn values_are_quoted_only_when_a_reader_would_misread_them() {
    let out = Captured::default();
    let log = logger(&out);
    info!(log, "";
        "plain" => "abc",
        "space" => "a b",
        "equals" => "a=b",
        "quote" => "say \"hi\"",
        "empty" => "",
        "newline" => "l1\nl2",
        "tab" => "a\tb",
        "bell" => "\u{7}",
        "del" => "\u{7f}",
        "backslash" => r"C:\dir",
        "unicode" => "ünïcode→✓",
        "replacement" => "\u{fffd}",
    );
    assert_eq!(
        out.text(),
        "level=info plain=abc space=\"a b\" equals=\"a=b\" quote=\"say \\\"hi\\\"\" empty=\"\" \
         newline=\"l1\\nl2\" tab=\"a\\tb\" bell=\"\\u0007\" del=\"\\u007f\" backslash=C:\\dir \
         unicode=ünïcode→✓ replacement=\"\u{fffd}\"\n"
    );
}

#[test]
fn numbers_booleans_absent_values_and_non_finite_floats() {
    let out = Captured::default();
    let log = logger(&out);
    let none: Option<u8> = None;
    warn!(log, "";
        "i" => -42i64, "u" => u64::MAX, "f" => 1.5f64, "nan" => f64::NAN,
        "inf" => f64::INFINITY, "ninf" => f64::NEG_INFINITY, "t" => true, "none" => none,
        "unit" => (), "ch" => ' ',
    );
    assert_eq!(
        out.text(),
        "level=warn i=-42 u=18446744073709551615 f=1.5 nan=NaN inf=+Inf ninf=-Inf t=true \
         none=null unit=null ch=\" \"\n"
    );
}

#[test]
fn keys_that_would_break_the_line_are_sanitised() {
    let out = Captured::default();
    let log = logger(&out);
    info!(log, ""; "a key" => 1, "k=v" => 2, "q\"" => 3, "" => 4, "nl\n" => 5);
    assert_eq!(out.text(), "level=info a_key=1 k_v=2 q_=3 _=4 nl_=5\n");
}

#[test]
fn formatted_messages_and_values_are_escaped_too() {
    let out = Captured::default();
    let log = logger(&out);
    let who = "wo rld";
    error!(log, "hello {}", who; "err" => format_args!("{}={}", "x", 1));
    assert_eq!(out.text(), "level=error msg=\"hello wo rld\" err=\"x=1\"\n");
}

#[test]
fn errors_are_written_as_their_text() {
    let out = Captured::default();
    let log = logger(&out);
    let err = std::io::Error::other("disk full");
    error!(log, "write failed"; "err" => #%err);
    assert_eq!(
        out.text(),
        "level=error msg=\"write failed\" err=\"disk full\"\n"
    );
}

#[test]
fn a_record_without_a_level_has_no_level_key_and_no_empty_msg() {
    let out = Captured::default();
    let log = logger(&out);
    slog::log!(log, SlogLevel::Info, kit_log::NO_LEVEL_TAG, ""; "k" => "v");
    debug!(log, "x");
    assert_eq!(out.text(), "k=v\nlevel=debug msg=x\n");
}

#[test]
fn every_line_parses_back() {
    let out = Captured::default();
    let log = logger(&out);
    info!(log, "m e s s a g e"; "x" => "\"\\\n", "y" => "");
    for line in out.text().lines() {
        let pairs = parse_logfmt(line).unwrap();
        assert_eq!(pairs[0], ("level".into(), "info".into()));
        assert_eq!(pairs[1], ("msg".into(), "m e s s a g e".into()));
        assert_eq!(pairs[2], ("x".into(), "\"\\\n".into()));
        assert_eq!(pairs[3], ("y".into(), String::new()));
    }
}

#[test]
fn the_writer_is_returned() {
    let out = Captured::default();
    let drain = kit_log::Logfmt::new(out.clone());
    let back = drain.into_inner();
    assert!(back.text().is_empty());
}

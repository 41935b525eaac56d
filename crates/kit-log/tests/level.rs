//! Levels: parsing, slog's levels mapped to go-kit's four, the filter and what it tells.

mod support;

use kit_log::{Level, LevelFilter, NO_LEVEL_TAG, Verdict};
use slog::{Drain, Logger, OwnedKVList, Record, RecordStatic, b, o, record_static};
use support::Captured;

#[test]
fn levels_parse_in_any_case_and_reject_others_clearly() {
    for (s, want) in [
        ("debug", Level::Debug),
        ("INFO", Level::Info),
        (" Warn ", Level::Warn),
        ("warning", Level::Warn),
        ("error", Level::Error),
    ] {
        assert_eq!(s.parse::<Level>(), Ok(want), "{s}");
    }
    for bad in ["", "trace", "fatal", "inf o"] {
        let err = bad.parse::<Level>().unwrap_err();
        assert!(err.to_string().contains("unknown log level"), "{err}");
    }
    assert!(Level::Debug < Level::Info && Level::Warn < Level::Error);
    assert_eq!(Level::Warn.to_string(), "warn");
}

#[test]
fn slog_levels_map_to_the_four() {
    use slog::Level as S;
    let mapped: Vec<Level> = [
        S::Trace,
        S::Debug,
        S::Info,
        S::Warning,
        S::Error,
        S::Critical,
    ]
    .into_iter()
    .map(Level::from)
    .collect();
    use Level::*;
    assert_eq!(mapped, [Debug, Debug, Info, Warn, Error, Error]);
}

fn verdict(
    filter: &LevelFilter<kit_log::Logfmt<Captured>>,
    level: slog::Level,
    tag: &'static str,
) -> Verdict {
    static RS: RecordStatic<'static> = record_static!(slog::Level::Info, "");
    let rs = RecordStatic { level, tag, ..RS };
    filter
        .log(
            &Record::new(&rs, &format_args!("m"), b!()),
            &OwnedKVList::from(o!()),
        )
        .unwrap()
}

#[test]
fn the_filter_allows_from_its_level_up_and_says_what_it_did() {
    let out = Captured::default();
    let filter = LevelFilter::new(kit_log::Logfmt::new(out.clone()), Level::Warn);
    assert_eq!(
        verdict(&filter, slog::Level::Debug, ""),
        Verdict::NotAllowed
    );
    assert_eq!(verdict(&filter, slog::Level::Info, ""), Verdict::NotAllowed);
    assert_eq!(verdict(&filter, slog::Level::Warning, ""), Verdict::Logged);
    assert_eq!(verdict(&filter, slog::Level::Critical, ""), Verdict::Logged);
    // Records without a level pass by default...
    assert_eq!(
        verdict(&filter, slog::Level::Info, NO_LEVEL_TAG),
        Verdict::Logged
    );
    assert_eq!(out.text(), "level=warn msg=m\nlevel=error msg=m\nmsg=m\n");
    // ...and are squelched on request.
    let out = Captured::default();
    let filter =
        LevelFilter::new(kit_log::Logfmt::new(out.clone()), Level::Debug).squelch_no_level(true);
    assert_eq!(
        verdict(&filter, slog::Level::Info, NO_LEVEL_TAG),
        Verdict::NotAllowed
    );
    assert_eq!(verdict(&filter, slog::Level::Debug, ""), Verdict::Logged);
    assert_eq!(out.text(), "level=debug msg=m\n");
}

#[test]
fn a_disallowed_record_evaluates_no_value() {
    let out = Captured::default();
    let drain = LevelFilter::new(kit_log::Logfmt::new(out.clone()), Level::Error).ignore_res();
    let evaluated = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let e = std::sync::Arc::clone(&evaluated);
    let log = Logger::root(
        drain,
        o!("lazy" => kit_log::FnValue(move |_| { e.store(true, std::sync::atomic::Ordering::SeqCst); 1 })),
    );
    slog::info!(log, "ignored");
    assert!(!evaluated.load(std::sync::atomic::Ordering::SeqCst));
    assert!(out.text().is_empty());
    assert!(!log.is_enabled(slog::Level::Info));
    assert!(log.is_enabled(slog::Level::Error));
}

//! Property tests: for arbitrary keys and values, logfmt parses back to the same pairs and JSON
//! is valid with the same pairs, in order.

mod support;

use std::fmt;
use std::panic::{RefUnwindSafe, UnwindSafe};

use proptest::prelude::*;
use serde::de::{Deserializer, MapAccess, Visitor};
use slog::{Drain, Logger, o};
use support::{Captured, parse_logfmt};

/// slog keys are `&'static str`; arbitrary test keys are leaked to get there (a test only).
fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// What logfmt makes of a key: characters that would break it become `_`.
fn sanitised(key: &str) -> String {
    if key.is_empty() {
        return "_".into();
    }
    key.chars()
        .map(|c| {
            if c <= ' ' || c == '=' || c == '"' || c == '\u{7f}' || c == '\u{fffd}' {
                '_'
            } else {
                c
            }
        })
        .collect()
}

fn log_pairs<D>(drain: D, pairs: &[(String, String)])
where
    D: Drain<Ok = (), Err = std::io::Error> + Send + Sync + RefUnwindSafe + UnwindSafe + 'static,
{
    // Build the record's pairs as context of a child logger, one pair per `o!`, which is the
    // same encoding path; then a no-level record with no message holds exactly those pairs.
    let mut log = Logger::root(drain.fuse(), o!());
    for (k, v) in pairs {
        log = log.new(o!(leak(k) => v.clone()));
    }
    slog::log!(log, slog::Level::Info, kit_log::NO_LEVEL_TAG, "");
}

/// Deserialises a JSON object into its members in order, duplicates kept.
struct Pairs(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut out = Vec::new();
                while let Some(kv) = map.next_entry::<String, String>()? {
                    out.push(kv);
                }
                Ok(Pairs(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn any_text() -> impl Strategy<Value = String> {
    // Mostly awkward characters: quotes, escapes, separators, controls, non-ASCII.
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('='),
                Just(' '),
                Just('\n'),
                Just('\t'),
                Just('\u{0}'),
                Just('\u{7f}'),
                Just('\u{fffd}'),
                Just('ü'),
                Just('{'),
                any::<char>(),
                "[a-z]".prop_map(|s| s.chars().next().unwrap_or('a')),
            ],
            0..12,
        )
        .prop_map(|cs| cs.into_iter().collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn logfmt_parses_back_to_the_same_pairs(
        pairs in proptest::collection::vec((any_text(), any_text()), 0..6)
    ) {
        let out = Captured::default();
        log_pairs(kit_log::Logfmt::new(out.clone()), &pairs);
        let text = out.text();
        prop_assert!(text.ends_with('\n'));
        prop_assert_eq!(text.matches('\n').count(), 1, "one line per record: {:?}", text);
        let parsed = parse_logfmt(text.trim_end_matches('\n'));
        prop_assert!(parsed.is_ok(), "{:?} in {:?}", parsed, text);
        let want: Vec<(String, String)> =
            pairs.iter().map(|(k, v)| (sanitised(k), v.clone())).collect();
        prop_assert_eq!(parsed.unwrap_or_default(), want);
    }

    #[test]
    fn json_is_valid_and_holds_the_same_pairs(
        pairs in proptest::collection::vec((any_text(), any_text()), 0..6)
    ) {
        let out = Captured::default();
        log_pairs(kit_log::Json::new(out.clone()), &pairs);
        let text = out.text();
        prop_assert_eq!(text.matches('\n').count(), 1, "one line per record: {:?}", text);
        let parsed: Result<Pairs, _> = serde_json::from_str(&text);
        prop_assert!(parsed.is_ok(), "{:?} in {:?}", parsed.err(), text);
        prop_assert_eq!(parsed.map(|p| p.0).unwrap_or_default(), pairs);
    }

    #[test]
    fn json_numbers_stay_numbers_and_non_finite_ones_strings(f in any::<f64>(), i in any::<i64>()) {
        let out = Captured::default();
        let log = Logger::root(kit_log::Json::new(out.clone()).fuse(), o!());
        slog::log!(log, slog::Level::Info, kit_log::NO_LEVEL_TAG, ""; "f" => f, "i" => i);
        let v: serde_json::Value = serde_json::from_str(&out.text()).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(v["i"].as_i64(), Some(i));
        if f.is_finite() {
            prop_assert_eq!(v["f"].as_f64(), Some(f));
        } else {
            prop_assert!(v["f"].is_string());
        }
    }
}

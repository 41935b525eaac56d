//! Text that goes on every request's record (the timestamp, the caller, the call's duration),
//! written by hand: through `core::fmt` the three cost more than the rest of the record (a
//! callgrind count of addsvc's request line, docs/PERFORMANCE.md). It is built in a reused
//! per-thread `String` from `&str`s (`itoa`'s digits among them), so it is text without a
//! UTF-8 check.
//! Each writes exactly what its `fmt` form writes, and tests compare them.

use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Reused buffers for the text of one value at a time.
#[derive(Default)]
pub(crate) struct Scratch {
    text: String,
    /// The second last written on this thread, and its text up to the fraction
    /// (`2026-11-24T16:20:01.`): records come many to a second, and the date is the costly part.
    second: Option<(u64, String)>,
    /// The place last written as a caller on this thread, and its text: a service's records
    /// come from a few places (its request log from one), so the text is rarely made anew.
    caller_of: Option<(&'static str, u32)>,
    caller: String,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers, or fresh ones if they are in use (a value
/// written while another is being written).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    crate::encode::with_reused(&SCRATCH, f)
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// Appends `n`, below `10^WIDTH`, in exactly `WIDTH` (1 to 19) digits, zero-padded: the digits
/// of `10^WIDTH + n` but the leading 1.
fn push_padded<const WIDTH: u32>(out: &mut String, n: u64) {
    let mut buffer = itoa::Buffer::new();
    let digits = buffer.format(10u64.pow(WIDTH) + n % 10u64.pow(WIDTH));
    out.push_str(&digits[1..]);
}

impl Scratch {
    /// `t` as RFC 3339 in UTC with nanoseconds (`2026-11-24T16:20:01.123456789Z`), as
    /// [`Rfc3339`](crate::Rfc3339) displays it; `None` after the year 9999 (let `fmt` write
    /// those).
    pub(crate) fn rfc3339(&mut self, t: SystemTime) -> Option<&str> {
        // Times before 1970 are written as the epoch: log timestamps never need them.
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let prefix = match &mut self.second {
            Some((cached, prefix)) if *cached == secs => prefix,
            second => &second.insert((secs, second_text(secs)?)).1,
        };
        self.text.clear();
        self.text.push_str(prefix);
        push_padded::<9>(&mut self.text, since.subsec_nanos().into());
        self.text.push('Z');
        Some(&self.text)
    }

    /// `file:line`, as `format!("{file}:{line}")`.
    pub(crate) fn caller(&mut self, file: &'static str, line: u32) -> &str {
        // The same place is the same `&'static str`: its address tells, not its text.
        let same = |(f, l): (&str, u32)| std::ptr::eq(f, file) && l == line;
        if !self.caller_of.is_some_and(same) {
            self.caller.clear();
            self.caller.push_str(file);
            self.caller.push(':');
            push_decimal(&mut self.caller, line.into());
            self.caller_of = Some((file, line));
        }
        &self.caller
    }

    /// `d` as its `Debug` form writes it (`1.5ms`, `9.416µs`, `2s`): the largest unit under
    /// which the whole part is not zero, then every fractional digit down to the last non-zero
    /// one.
    pub(crate) fn duration(&mut self, d: Duration) -> &str {
        const NANOS_PER_MILLI: u32 = 1_000_000;
        const NANOS_PER_MICRO: u32 = 1_000;
        let nanos = d.subsec_nanos();
        // `divisor` is the place of the fraction's first digit.
        let (whole, fraction, divisor, unit): (u64, u32, u32, &str) = if d.as_secs() > 0 {
            (d.as_secs(), nanos, 100_000_000, "s")
        } else if nanos >= NANOS_PER_MILLI {
            let whole = u64::from(nanos / NANOS_PER_MILLI);
            (whole, nanos % NANOS_PER_MILLI, 100_000, "ms")
        } else if nanos >= NANOS_PER_MICRO {
            let whole = u64::from(nanos / NANOS_PER_MICRO);
            (whole, nanos % NANOS_PER_MICRO, 100, "µs")
        } else {
            (u64::from(nanos), 0, 1, "ns")
        };
        self.text.clear();
        push_decimal(&mut self.text, whole);
        if fraction > 0 {
            // The fraction's digits (as many as the unit has) without the trailing zeros.
            let mut buffer = itoa::Buffer::new();
            let digits = buffer.format(u64::from(divisor) * 10 + u64::from(fraction));
            self.text.push('.');
            self.text.push_str(digits[1..].trim_end_matches('0'));
        }
        self.text.push_str(unit);
        &self.text
    }
}

/// The text of the second `secs` after the epoch up to its fraction, or `None` after 9999.
fn second_text(secs: u64) -> Option<String> {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    if year > 9999 {
        return None;
    }
    let mut text = String::with_capacity(20);
    push_padded::<4>(&mut text, year);
    text.push('-');
    push_padded::<2>(&mut text, month);
    text.push('-');
    push_padded::<2>(&mut text, day);
    text.push('T');
    push_padded::<2>(&mut text, rem / 3600);
    text.push(':');
    push_padded::<2>(&mut text, rem / 60 % 60);
    text.push(':');
    push_padded::<2>(&mut text, rem % 60);
    text.push('.');
    Some(text)
}

/// The proleptic Gregorian date `days` after 1970-01-01 (the well-known era-based conversion:
/// eras of 400 years, each 146,097 days long).
pub(crate) fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let doe = z - era * 146_097; // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of year from March 1st, 0..=365
    let mp = (5 * doy + 2) / 153; // month from March, 0..=11
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn duration(d: Duration) -> String {
        with_scratch(|s| s.duration(d).to_owned())
    }

    fn rfc3339(t: SystemTime) -> Option<String> {
        with_scratch(|s| s.rfc3339(t).map(str::to_owned))
    }

    proptest! {
        #[test]
        fn durations_read_as_debug_writes_them(secs in prop_oneof![Just(0u64), 0..100u64, any::<u64>()],
                                              nanos in prop_oneof![0..1_000u32, 0..1_000_000u32, 0..1_000_000_000u32]) {
            let d = Duration::new(secs, nanos);
            prop_assert_eq!(duration(d), format!("{d:?}"));
        }

        #[test]
        // Each place twice, between others: the cached text must follow the place.
        fn callers_read_as_fmt_writes_them(file in "[a-z/._é]{0,300}", line in any::<u32>()) {
            let file: &'static str = Box::leak(file.into_boxed_str());
            let same_text: &'static str = Box::leak(file.to_owned().into_boxed_str());
            for (file, line) in [(file, line), (file, line ^ 1), (same_text, line), (file, line)] {
                let text = with_scratch(|s| s.caller(file, line).to_owned());
                prop_assert_eq!(text, format!("{file}:{line}"));
            }
        }
    }

    #[test]
    fn round_figures_keep_no_fraction() {
        for (d, text) in [
            (Duration::ZERO, "0ns"),
            (Duration::from_nanos(999), "999ns"),
            (Duration::from_micros(1), "1µs"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_nanos(1_000_001), "1.000001ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::new(1, 1), "1.000000001s"),
            (Duration::MAX, "18446744073709551615.999999999s"),
        ] {
            assert_eq!(duration(d), text);
            assert_eq!(format!("{d:?}"), text);
        }
    }

    #[test]
    fn the_cached_second_follows_the_clock() {
        let t = UNIX_EPOCH + Duration::new(1_764_547_199, 999_999_999);
        let next = t + Duration::from_nanos(1);
        for (t, text) in [
            (t, "2025-11-30T23:59:59.999999999Z"),
            (next, "2025-12-01T00:00:00.000000000Z"),
            (t, "2025-11-30T23:59:59.999999999Z"),
            (t, "2025-11-30T23:59:59.999999999Z"),
        ] {
            assert_eq!(rfc3339(t).unwrap(), text);
        }
    }

    #[test]
    fn years_past_9999_are_left_to_fmt() {
        let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799); // 9999-12-31T23:59:59Z
        assert_eq!(rfc3339(last).unwrap(), "9999-12-31T23:59:59.000000000Z");
        assert!(rfc3339(last + Duration::from_secs(1)).is_none());
        // The cache is left as it was: the next time in range is still written right.
        assert_eq!(rfc3339(last).unwrap(), "9999-12-31T23:59:59.000000000Z");
    }

    #[test]
    fn a_value_written_while_the_scratch_is_in_use_gets_its_own() {
        let outer = with_scratch(|s| {
            let inner = with_scratch(|s| s.caller("inner.rs", 2).to_owned());
            format!("{} {inner}", s.caller("outer.rs", 1))
        });
        assert_eq!(outer, "outer.rs:1 inner.rs:2");
    }
}

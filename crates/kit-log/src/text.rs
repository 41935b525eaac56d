//! Text that goes on every request's record (the timestamp, the caller, the call's duration),
//! written into a buffer on the stack by hand: through `core::fmt` the three cost more than
//! the rest of the record (a callgrind count of addsvc's request line, docs/PERFORMANCE.md).
//! Each writes exactly what its `fmt` form writes, and tests compare them.

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A short text built on the stack.
pub(crate) struct Text<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    fn new() -> Self {
        Text {
            buf: [0; N],
            len: 0,
        }
    }

    /// Appends `bytes`; the callers size `N` so that it always fits.
    fn push(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Appends `n` in decimal, at least `width` digits (zero-padded).
    fn push_decimal(&mut self, mut n: u64, width: usize) {
        let mut digits = [b'0'; 20];
        let mut start = digits.len();
        while n > 0 || start == digits.len() {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        start = start.min(digits.len() - width.min(digits.len()));
        self.push(&digits[start..]);
    }

    /// The text: only ASCII and the `&str`s given to [`caller`] are ever pushed.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

thread_local! {
    /// The second last written on this thread, and its text up to the fraction
    /// (`2026-11-24T16:20:01.`): records come many to a second, and the date is the costly part.
    static SECOND: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
}

/// `t` as RFC 3339 in UTC with nanoseconds (`2026-11-24T16:20:01.123456789Z`), as
/// [`Rfc3339`](crate::Rfc3339) displays it; `None` after the year 9999 (let `fmt` write those).
pub(crate) fn rfc3339(t: SystemTime) -> Option<Text<30>> {
    // Times before 1970 are written as the epoch: log timestamps never need them.
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (cached, mut prefix) = SECOND.get();
    if cached != secs {
        prefix = second(secs)?;
        SECOND.set((secs, prefix));
    }
    let mut text = Text::new();
    text.push(&prefix);
    text.push_decimal(since.subsec_nanos().into(), 9);
    text.push(b"Z");
    Some(text)
}

/// The text of the second `secs` after the epoch up to its fraction, or `None` after 9999.
fn second(secs: u64) -> Option<[u8; 20]> {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    if year > 9999 {
        return None;
    }
    let mut text = Text::<20>::new();
    text.push_decimal(year, 4);
    text.push(b"-");
    text.push_decimal(month, 2);
    text.push(b"-");
    text.push_decimal(day, 2);
    text.push(b"T");
    text.push_decimal(rem / 3600, 2);
    text.push(b":");
    text.push_decimal(rem / 60 % 60, 2);
    text.push(b":");
    text.push_decimal(rem % 60, 2);
    text.push(b".");
    Some(text.buf)
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

/// The longest file path [`caller`] writes by hand; longer ones go through `fmt`.
const MAX_CALLER_FILE: usize = 200;

/// `file:line`, as `format!("{file}:{line}")`; `None` for a path longer than 200 bytes.
pub(crate) fn caller(file: &str, line: u32) -> Option<Text<{ MAX_CALLER_FILE + 11 }>> {
    if file.len() > MAX_CALLER_FILE {
        return None;
    }
    let mut text = Text::new();
    text.push(file.as_bytes());
    text.push(b":");
    text.push_decimal(line.into(), 1);
    Some(text)
}

/// `d` as its `Debug` form writes it (`1.5ms`, `9.416µs`, `2s`): the largest unit under
/// which the whole part is not zero, then every fractional digit down to the last non-zero one.
pub(crate) fn duration(d: Duration) -> Text<32> {
    const NANOS_PER_MILLI: u32 = 1_000_000;
    const NANOS_PER_MICRO: u32 = 1_000;
    let nanos = d.subsec_nanos();
    let (whole, mut fraction, mut divisor, unit): (u64, u32, u32, &str) = if d.as_secs() > 0 {
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
    let mut text = Text::new();
    text.push_decimal(whole, 1);
    if fraction > 0 {
        text.push(b".");
        while fraction > 0 {
            text.push(&[b'0' + (fraction / divisor) as u8]);
            fraction %= divisor;
            divisor /= 10;
        }
    }
    text.push(unit.as_bytes());
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn durations_read_as_debug_writes_them(secs in prop_oneof![Just(0u64), 0..100u64, any::<u64>()],
                                              nanos in prop_oneof![0..1_000u32, 0..1_000_000u32, 0..1_000_000_000u32]) {
            let d = Duration::new(secs, nanos);
            let text = duration(d);
            prop_assert_eq!(text.as_str(), format!("{d:?}"));
        }

        #[test]
        fn callers_read_as_fmt_writes_them(file in "[a-z/._é]{0,100}", line in any::<u32>()) {
            let text = caller(&file, line).expect("a short path");
            prop_assert_eq!(text.as_str(), format!("{file}:{line}"));
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
            assert_eq!(duration(d).as_str(), text);
            assert_eq!(format!("{d:?}"), text);
        }
    }

    #[test]
    fn long_paths_are_left_to_fmt() {
        assert!(caller(&"a".repeat(MAX_CALLER_FILE), 1).is_some());
        assert!(caller(&"a".repeat(MAX_CALLER_FILE + 1), 1).is_none());
        let longest = caller(&"a".repeat(MAX_CALLER_FILE), u32::MAX).unwrap();
        assert!(longest.as_str().ends_with(":4294967295"));
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
            assert_eq!(rfc3339(t).unwrap().as_str(), text);
        }
    }

    #[test]
    fn years_past_9999_are_left_to_fmt() {
        let last = UNIX_EPOCH + Duration::from_secs(253_402_300_799); // 9999-12-31T23:59:59Z
        assert_eq!(
            rfc3339(last).unwrap().as_str(),
            "9999-12-31T23:59:59.000000000Z"
        );
        assert!(rfc3339(last + Duration::from_secs(1)).is_none());
    }
}

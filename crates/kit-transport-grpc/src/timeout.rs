//! The `grpc-timeout` header: at most 8 digits and a unit (H, M, S, m, u, n), per the gRPC over
//! HTTP/2 specification.

use std::time::Duration;

/// The header's name, made once (a name given as text is parsed at every lookup).
pub(crate) static GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

/// Parses a `grpc-timeout` value; `None` for anything malformed (the call then has no
/// deadline, as the specification leaves it to the server).
pub(crate) fn parse(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_and_every_malformed_value() {
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse("10S"), Some(Duration::from_secs(10)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(parse("1n"), Some(Duration::from_nanos(1)));
        for bad in [
            "",
            "S",
            "123456789S",
            "10s",
            "1.5S",
            "-1S",
            "10",
            "m10",
            "1 S",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}

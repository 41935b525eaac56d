//! The service: go-kit addsvc's rules, as plain functions and as kit endpoints.

use kit_core::{Context, Endpoint, Error, Failer, Failing, endpoint_fn};
use kit_metrics::Counter;

/// The longest result Concat makes, in bytes.
pub const MAX_CONCAT_LEN: usize = 10;

/// The business errors, with go-kit's messages. Clients match on the text.
pub mod errors {
    /// Sum of 0 and 0.
    pub const TWO_ZEROES: &str = "can't sum two zeroes";
    /// A sum outside the signed 32-bit range.
    pub const INT_OVERFLOW: &str = "integer overflow";
    /// A concatenation longer than [`MAX_CONCAT_LEN`](super::MAX_CONCAT_LEN).
    pub const MAX_SIZE_EXCEEDED: &str = "result exceeds maximum size";
}

/// `a + b`, refusing two zeroes and sums that would leave `i32`, by go-kit's exact rule: the
/// check is on `b` against the bound (`a > MAX - b` for positive `b`, `a < MIN - b` for
/// negative), so with `b == 0` any `a` passes, even one outside `i32` (go-kit's service answers
/// `3000000000 + 0 = 3000000000`; so does this one, as the interop tests check).
pub fn sum(a: i64, b: i64) -> Result<i64, Error> {
    const MAX: i64 = i32::MAX as i64;
    const MIN: i64 = i32::MIN as i64;
    if a == 0 && b == 0 {
        return Err(Error::business(errors::TWO_ZEROES));
    }
    // Neither bound can overflow an i64 (|MIN|, MAX < 2^31), and past the check neither can
    // a + b: it lies within [MIN, MAX], or b == 0.
    if (b > 0 && a > MAX - b) || (b < 0 && a < MIN - b) {
        return Err(Error::business(errors::INT_OVERFLOW));
    }
    Ok(a + b)
}

/// `a` followed by `b`, refusing results over [`MAX_CONCAT_LEN`] bytes.
pub fn concat(a: &str, b: &str) -> Result<String, Error> {
    if a.len() + b.len() > MAX_CONCAT_LEN {
        return Err(Error::business(errors::MAX_SIZE_EXCEEDED));
    }
    Ok(format!("{a}{b}"))
}

/// A Sum call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SumRequest {
    /// The first integer.
    pub a: i64,
    /// The second.
    pub b: i64,
}

/// A Concat call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConcatRequest {
    /// The first string.
    pub a: String,
    /// The second.
    pub b: String,
}

/// An endpoint's reply: the value, or the business error the rule gave (go-kit addsvc's
/// `SumResponse`/`ConcatResponse`). It implements [`Failer`], and the endpoints are marked
/// [`Failing`], so that logs, metrics and traces see a carried error as the business outcome
/// it is, while each transport puts it on the wire its own way (an HTTP 400, a JSON-RPC error,
/// the gRPC reply's `err`).
#[derive(Clone, Debug, Default)]
pub struct Reply<T> {
    /// The answer; zero when `err` is set.
    pub v: T,
    /// The business error, if the rules said no.
    pub err: Option<Error>,
}

impl<T> Failer for Reply<T> {
    fn failed(&self) -> Option<Error> {
        self.err.clone()
    }
}

impl<T: Default> From<Result<T, Error>> for Reply<T> {
    /// A business error goes into the reply; other errors never reach here (the rules give
    /// only business errors).
    fn from(result: Result<T, Error>) -> Self {
        match result {
            Ok(v) => Reply { v, err: None },
            Err(err) => Reply {
                v: T::default(),
                err: Some(err),
            },
        }
    }
}

impl<T> Reply<T> {
    /// The value, or the business error: for transports that answer a business error as an
    /// error (an HTTP 400, a JSON-RPC error object).
    pub fn into_v(self) -> Result<T, Error> {
        match self.err {
            Some(err) => Err(err),
            None => Ok(self.v),
        }
    }
}

/// The Sum endpoint; `integers` counts the integers summed (the results' total, as go-kit's).
pub fn sum_endpoint(
    integers: impl Counter,
) -> impl Endpoint<SumRequest, Response = Reply<i64>> + Clone {
    Failing::new(endpoint_fn(move |_cx: Context, r: SumRequest| {
        let result = sum(r.a, r.b);
        if let Ok(v) = result {
            integers.add(v as f64);
        }
        std::future::ready(Ok(Reply::from(result)))
    }))
}

/// The Concat endpoint; `characters` counts the characters concatenated, in bytes as go-kit's
/// `len(v)` does.
pub fn concat_endpoint(
    characters: impl Counter,
) -> impl Endpoint<ConcatRequest, Response = Reply<String>> + Clone {
    Failing::new(endpoint_fn(move |_cx: Context, r: ConcatRequest| {
        let result = concat(&r.a, &r.b);
        if let Ok(v) = &result {
            characters.add(v.len() as f64);
        }
        std::future::ready(Ok(Reply::from(result)))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rules_of_go_kits_addsvc() {
        assert_eq!(sum(1, 2).unwrap(), 3);
        assert_eq!(sum(0, 5).unwrap(), 5);
        assert_eq!(sum(0, 0).unwrap_err().message(), errors::TWO_ZEROES);
        assert_eq!(sum(i32::MAX.into(), 0).unwrap(), 2147483647);
        assert_eq!(
            sum(i32::MAX.into(), 1).unwrap_err().message(),
            errors::INT_OVERFLOW
        );
        assert_eq!(
            sum(i32::MIN.into(), -1).unwrap_err().message(),
            errors::INT_OVERFLOW
        );
        assert_eq!(
            sum(i64::MAX, 1).unwrap_err().message(),
            errors::INT_OVERFLOW
        );
        // go-kit's rule checks against b: with b == 0, any a passes; extreme operands never
        // overflow the check itself.
        assert_eq!(sum(3_000_000_000, 0).unwrap(), 3_000_000_000);
        assert_eq!(sum(i64::MIN, 0).unwrap(), i64::MIN);
        assert_eq!(sum(3_000_000_000, -1_000_000_000).unwrap(), 2_000_000_000);
        for (a, b) in [
            (0, i64::MAX),
            (0, i64::MIN),
            (i64::MIN, i64::MIN),
            (i64::MAX, i64::MAX),
        ] {
            assert_eq!(sum(a, b).unwrap_err().message(), errors::INT_OVERFLOW);
        }
        assert_eq!(concat("a", "b").unwrap(), "ab");
        assert_eq!(concat("12345", "67890").unwrap(), "1234567890");
        assert_eq!(
            concat("12345", "678901").unwrap_err().message(),
            errors::MAX_SIZE_EXCEEDED
        );
        assert_eq!(sum(0, 0).unwrap_err().kind(), kit_core::ErrorKind::Business);
    }
}

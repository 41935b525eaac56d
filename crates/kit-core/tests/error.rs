//! Errors: classification, statuses, causes, conversion from foreign errors, outcomes.

use std::error::Error as _;
use std::time::Duration;

use kit_core::deadline::Deadline;
use kit_core::{
    BoxEndpoint, BoxError, Context, Endpoint, Error, ErrorKind, Failer, Failing, Middleware,
    Outcome, endpoint_fn,
};

const ALL: [ErrorKind; 13] = [
    ErrorKind::Business,
    ErrorKind::InvalidArgument,
    ErrorKind::Unauthenticated,
    ErrorKind::PermissionDenied,
    ErrorKind::NotFound,
    ErrorKind::AlreadyExists,
    ErrorKind::Cancelled,
    ErrorKind::Timeout,
    ErrorKind::Overloaded,
    ErrorKind::Unavailable,
    ErrorKind::Unimplemented,
    ErrorKind::Internal,
    ErrorKind::Unknown,
];

#[test]
fn every_kind_maps_to_the_published_http_and_grpc_statuses() {
    let table: Vec<(ErrorKind, u16, i32, bool, &str)> = ALL
        .iter()
        .map(|&k| {
            (
                k,
                k.http_status(),
                k.grpc_code(),
                k.is_failure(),
                k.as_str(),
            )
        })
        .collect();
    use ErrorKind::*;
    assert_eq!(
        table,
        [
            (Business, 400, 9, false, "business"),
            (InvalidArgument, 400, 3, false, "invalid_argument"),
            (Unauthenticated, 401, 16, false, "unauthenticated"),
            (PermissionDenied, 403, 7, false, "permission_denied"),
            (NotFound, 404, 5, false, "not_found"),
            (AlreadyExists, 409, 6, false, "already_exists"),
            (Cancelled, 499, 1, false, "cancelled"),
            (Timeout, 504, 4, true, "timeout"),
            (Overloaded, 429, 8, true, "overloaded"),
            (Unavailable, 503, 14, true, "unavailable"),
            (Unimplemented, 501, 12, true, "unimplemented"),
            (Internal, 500, 13, true, "internal"),
            (Unknown, 500, 2, true, "unknown"),
        ]
    );
}

#[test]
fn display_is_the_message_alone_and_overrides_replace_defaults() {
    let err = Error::business("result exceeds maximum size");
    assert_eq!(err.to_string(), "result exceeds maximum size");
    assert_eq!((err.http_status(), err.grpc_code()), (400, 9));
    let err = err.with_http_status(422).with_grpc_code(11);
    assert_eq!((err.http_status(), err.grpc_code()), (422, 11));
    assert_eq!(err.kind(), ErrorKind::Business);
    let dbg = format!("{err:?}");
    assert!(dbg.contains("Business") && dbg.contains("422"), "{dbg}");
}

#[test]
fn the_cause_is_kept_as_source() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
    let err = Error::unavailable("backend down").with_source(io);
    assert_eq!(err.to_string(), "backend down");
    let source = err.source().expect("a source");
    assert_eq!(source.to_string(), "connection refused");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
    assert!(Error::internal("x").source().is_none());
}

#[test]
fn clones_share_and_edits_do_not_leak_into_clones() {
    let a = Error::not_found("gone");
    let b = a.clone().with_http_status(410);
    assert_eq!(a.http_status(), 404);
    assert_eq!(b.http_status(), 410);
}

#[test]
fn foreign_errors_are_classified_by_type() {
    // A kit error survives a trip through BoxError unchanged.
    let boxed: BoxError = Box::new(Error::business("no").with_http_status(418));
    let back = Error::from(boxed);
    assert_eq!(
        (back.kind(), back.http_status()),
        (ErrorKind::Business, 418)
    );

    // tower's errors are known by type with the `tower` feature (and unknown without it).
    let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
    let shed: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
    if cfg!(feature = "tower") {
        assert_eq!(Error::from(elapsed).kind(), ErrorKind::Timeout);
        assert_eq!(Error::from(shed).kind(), ErrorKind::Overloaded);
    } else {
        assert_eq!(Error::from(elapsed).kind(), ErrorKind::Unknown);
        assert_eq!(Error::from(shed).kind(), ErrorKind::Unknown);
    }

    let io: BoxError = Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
    assert_eq!(Error::from(io).kind(), ErrorKind::Timeout);

    let refused: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
    assert_eq!(Error::from(refused).kind(), ErrorKind::Unavailable);

    // Known kinds get a fixed message too: an I/O error's text names addresses and OS error
    // numbers, and the message goes on the wire. The text is the detail, for logs.
    let io: BoxError = Box::new(std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "connect to 10.1.2.3:5432: Connection refused (os error 111)",
    ));
    let err = Error::from(io);
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Unavailable, "unavailable")
    );
    assert_eq!(
        err.detail().as_deref(),
        Some("connect to 10.1.2.3:5432: Connection refused (os error 111)")
    );

    // Unknown errors get a fixed message: their text may hold internals and the message goes
    // on the wire. The text stays reachable as the source, for logs.
    let other: BoxError = "open /etc/secret.db: permission denied".into();
    let err = Error::from(other);
    assert_eq!(err.kind(), ErrorKind::Unknown);
    assert_eq!(err.to_string(), "unknown error");
    assert_eq!(
        err.source().expect("source").to_string(),
        "open /etc/secret.db: permission denied"
    );
}

/// A wrapper in the style of tower's buffer error or hyper's: it says little itself and keeps
/// the real cause as its source.
#[derive(Debug)]
struct Wrapped(BoxError);

impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("service failed")
    }
}

impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

#[test]
fn classification_looks_through_the_source_chain() {
    let inner_kit: BoxError = Box::new(Wrapped(Box::new(Error::not_found("no such key"))));
    let err = Error::from(inner_kit);
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(err.to_string(), "no such key");

    let twice: BoxError = Box::new(Wrapped(Box::new(Wrapped(Box::new(std::io::Error::from(
        std::io::ErrorKind::TimedOut,
    ))))));
    let err = Error::from(twice);
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(err.to_string(), "timed out");
    // The whole chain is kept, for logs.
    assert_eq!(err.source().expect("source").to_string(), "service failed");
    assert_eq!(
        err.detail().as_deref(),
        Some("service failed: service failed: timed out")
    );

    let reset: BoxError = Box::new(Wrapped(Box::new(std::io::Error::from(
        std::io::ErrorKind::ConnectionReset,
    ))));
    assert_eq!(Error::from(reset).kind(), ErrorKind::Unavailable);
}

#[test]
fn clients_map_received_statuses_back_to_kinds() {
    // Every kind survives the round trip through its own gRPC code.
    for kind in ALL {
        assert_eq!(
            ErrorKind::from_grpc_code(kind.grpc_code()),
            Some(kind),
            "{kind}"
        );
    }
    assert_eq!(ErrorKind::from_grpc_code(0), None);
    assert_eq!(ErrorKind::from_grpc_code(10), Some(ErrorKind::Unavailable));
    assert_eq!(
        ErrorKind::from_grpc_code(11),
        Some(ErrorKind::InvalidArgument)
    );
    assert_eq!(ErrorKind::from_grpc_code(15), Some(ErrorKind::Internal));
    assert_eq!(ErrorKind::from_grpc_code(17), Some(ErrorKind::Unknown));
    assert_eq!(ErrorKind::from_grpc_code(-1), Some(ErrorKind::Unknown));

    let http: Vec<(u16, Option<ErrorKind>)> = [
        200, 204, 302, 400, 401, 403, 404, 408, 409, 413, 422, 429, 499, 500, 501, 502, 503, 504,
        599, 600,
    ]
    .iter()
    .map(|&s| (s, ErrorKind::from_http_status(s)))
    .collect();
    use ErrorKind::*;
    assert_eq!(
        http,
        [
            (200, None),
            (204, None),
            (302, None),
            (400, Some(InvalidArgument)),
            (401, Some(Unauthenticated)),
            (403, Some(PermissionDenied)),
            (404, Some(NotFound)),
            (408, Some(Timeout)),
            (409, Some(AlreadyExists)),
            (413, Some(InvalidArgument)),
            (422, Some(InvalidArgument)),
            (429, Some(Overloaded)),
            (499, Some(Cancelled)),
            (500, Some(Internal)),
            (501, Some(Unimplemented)),
            (502, Some(Unavailable)),
            (503, Some(Unavailable)),
            (504, Some(Timeout)),
            (599, Some(Internal)),
            (600, Some(Unknown)),
        ]
    );
}

#[test]
fn only_timeouts_overload_and_unavailability_are_retryable() {
    let retryable: Vec<ErrorKind> = ALL.into_iter().filter(|k| k.is_retryable()).collect();
    assert_eq!(
        retryable,
        [
            ErrorKind::Timeout,
            ErrorKind::Overloaded,
            ErrorKind::Unavailable
        ]
    );
    // Retryable is a narrower set than failure.
    assert!(retryable.iter().all(|k| k.is_failure()));
    assert!(Error::unavailable("x").is_retryable());
    assert!(!Error::internal("x").is_retryable());
}

#[test]
fn outcome_separates_success_rejection_and_failure() {
    assert_eq!(Outcome::of(&Ok::<_, Error>(())), Outcome::Success);
    for kind in ALL {
        let result: Result<(), Error> = Err(Error::new(kind, "x"));
        let want = if kind.is_failure() {
            Outcome::Failure
        } else {
            Outcome::Rejected
        };
        assert_eq!(Outcome::of(&result), want, "{kind}");
    }
    assert_eq!(Outcome::Rejected.as_str(), "rejected");
}

/// A reply that carries its business error as text, as a protobuf reply does.
struct Reply {
    err: String,
}

impl Failer for Reply {
    fn failed(&self) -> Option<Error> {
        (!self.err.is_empty()).then(|| Error::business(self.err.clone()))
    }
}

#[tokio::test]
async fn a_carried_business_error_is_seen_through_every_kit_core_wrapper() {
    let replies = |_cx, err: &'static str| async move {
        match err {
            "timeout" => Err(Error::timeout("deadline exceeded")),
            err => Ok::<_, Error>(Reply { err: err.into() }),
        }
    };
    let marked = Failing::new(endpoint_fn(replies));
    // Boxed, and under the deadline middleware, the marking is still seen.
    let boxed = BoxEndpoint::new(Deadline::with_timeout(Duration::from_secs(5)).wrap(marked));
    for (endpoint_name, input, want) in [
        ("ok", "", Outcome::Success),
        ("carried", "can't sum two zeroes", Outcome::Rejected),
        ("failed", "timeout", Outcome::Failure),
    ] {
        let result = boxed.call(Context::new(), input).await;
        assert_eq!(Outcome::of_call(&boxed, &result), want, "{endpoint_name}");
    }
    let result = boxed.call(Context::new(), "can't sum two zeroes").await;
    let err = Outcome::error_of(&boxed, &result).expect("the carried error");
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Business, "can't sum two zeroes")
    );
    // Unmarked, the carried error is invisible: that is what Failing is for.
    let unmarked = endpoint_fn(replies);
    let result = unmarked.call(Context::new(), "can't sum two zeroes").await;
    assert_eq!(Outcome::of_call(&unmarked, &result), Outcome::Success);
    assert_eq!(Outcome::of(&result), Outcome::Success);
}

#[test]
fn the_public_list_of_kinds_is_complete() {
    assert_eq!(ErrorKind::ALL, ALL.as_slice());
}

#[test]
fn errors_are_small_so_results_stay_small() {
    use std::mem::size_of;
    assert_eq!(size_of::<Error>(), size_of::<usize>());
    assert!(size_of::<Result<Duration, Error>>() <= size_of::<Duration>() + size_of::<usize>());
    assert!(size_of::<Result<u64, Error>>() <= 2 * size_of::<usize>());
}

#[test]
fn the_detail_is_the_chain_of_causes_and_none_without_one() {
    assert_eq!(Error::internal("x").detail(), None);
    let inner = Error::unavailable("db down")
        .with_source(std::io::Error::other("connect 10.0.0.7:5432: refused"));
    let outer = Error::internal("the report failed").with_source(inner);
    assert_eq!(outer.message(), "the report failed");
    assert_eq!(
        outer.detail().as_deref(),
        Some("db down: connect 10.0.0.7:5432: refused")
    );
}

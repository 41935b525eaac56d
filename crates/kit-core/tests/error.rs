//! Errors: classification, statuses, causes, conversion from foreign errors, outcomes.

use std::error::Error as _;
use std::time::Duration;

use kit_core::{BoxError, Error, ErrorKind, Failer, Outcome};

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

    let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
    assert_eq!(Error::from(elapsed).kind(), ErrorKind::Timeout);

    let shed: BoxError = Box::new(tower::load_shed::error::Overloaded::new());
    assert_eq!(Error::from(shed).kind(), ErrorKind::Overloaded);

    let io: BoxError = Box::new(std::io::Error::new(std::io::ErrorKind::TimedOut, "slow"));
    assert_eq!(Error::from(io).kind(), ErrorKind::Timeout);

    let other: BoxError = "something odd".into();
    let err = Error::from(other);
    assert_eq!(err.kind(), ErrorKind::Unknown);
    assert_eq!(err.to_string(), "something odd");
    assert!(err.source().is_some());
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

struct Reply {
    err: Option<Error>,
}

impl Failer for Reply {
    fn failed(&self) -> Option<&Error> {
        self.err.as_ref()
    }
}

#[test]
fn a_failer_response_reports_its_business_error() {
    let ok: Result<Reply, Error> = Ok(Reply { err: None });
    let carried: Result<Reply, Error> = Ok(Reply {
        err: Some(Error::business("can't sum two zeroes")),
    });
    let failed: Result<Reply, Error> = Err(Error::timeout("deadline exceeded"));
    assert_eq!(Outcome::of_failer(&ok), Outcome::Success);
    assert_eq!(Outcome::of_failer(&carried), Outcome::Rejected);
    assert_eq!(Outcome::of_failer(&failed), Outcome::Failure);
    // Without Failer the carried error is invisible: that is what the trait is for.
    assert_eq!(Outcome::of(&carried), Outcome::Success);
}

#[test]
fn errors_are_small_so_results_stay_small() {
    assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    assert_eq!(
        std::mem::size_of::<Result<Duration, Error>>(),
        std::mem::size_of::<Duration>()
    );
}

//! The one error type every endpoint returns, and how callers classify it.
//!
//! kit-rs has a single concrete [`Error`] rather than a generic error parameter so that every
//! middleware (breakers, retries, metrics, logging) can classify a failure without knowing the
//! endpoint's types, and every transport can turn it into its own status without string
//! matching. The classification is the [`ErrorKind`]; it also carries the default HTTP status and
//! gRPC code, which an error may override one by one.
//!
//! # Business errors and failures
//!
//! go-kit separates *business errors* (the request was understood and the answer is "no", such as
//! "insufficient funds") from *failures* (the service could not answer: timeouts, unavailable
//! backends, bugs). Circuit breakers and retries must only count failures, or a client sending bad
//! requests trips the breaker for everyone. Here a business error is an [`Error`] of kind
//! [`ErrorKind::Business`]; a response type that carries its business error inside (as some wire
//! formats do) implements [`Failer`]. [`Outcome`] is the three-way answer middleware asks for.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

/// A type-erased error, as tower and hyper use it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong, in the terms a caller and a transport need.
///
/// Each kind has a default HTTP status ([`ErrorKind::http_status`]) and gRPC code
/// ([`ErrorKind::grpc_code`]); the pairs follow the HTTP mapping documented with each code in
/// `google/rpc/code.proto`, so that the two transports agree. [`ErrorKind::from_grpc_code`] and
/// [`ErrorKind::from_http_status`] map back, for clients. The enum is non-exhaustive: match with
/// a wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request was understood and the answer is "no" (go-kit's business error). Not a failure.
    Business,
    /// The request is malformed or a parameter is out of range. Not a failure of the callee.
    InvalidArgument,
    /// The caller did not prove who it is.
    Unauthenticated,
    /// The caller is known but not allowed to do this.
    PermissionDenied,
    /// The thing asked for does not exist.
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// The caller gave up (its context was cancelled).
    Cancelled,
    /// The deadline passed before an answer came.
    Timeout,
    /// Too much load: a limit, a quota or a queue is full.
    Overloaded,
    /// The callee, or something it needs, cannot be reached now.
    Unavailable,
    /// The callee does not implement this method.
    Unimplemented,
    /// A bug or broken invariant in the callee.
    Internal,
    /// Not classified: an error from elsewhere whose meaning is not known.
    Unknown,
}

impl ErrorKind {
    /// The default HTTP status for this kind.
    ///
    /// Business and invalid-argument errors are 400 (as go-kit's addsvc and gRPC's mapping);
    /// cancelled is 499, the de-facto "client closed request".
    pub const fn http_status(self) -> u16 {
        match self {
            ErrorKind::Business | ErrorKind::InvalidArgument => 400,
            ErrorKind::Unauthenticated => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::AlreadyExists => 409,
            ErrorKind::Overloaded => 429,
            ErrorKind::Cancelled => 499,
            ErrorKind::Internal | ErrorKind::Unknown => 500,
            ErrorKind::Unimplemented => 501,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
        }
    }

    /// The default gRPC status code (the numeric value of `google.rpc.Code`) for this kind.
    ///
    /// A business error is `FAILED_PRECONDITION` (9): the request was valid but the system's
    /// state says no.
    pub const fn grpc_code(self) -> i32 {
        match self {
            ErrorKind::Cancelled => 1,
            ErrorKind::Unknown => 2,
            ErrorKind::InvalidArgument => 3,
            ErrorKind::Timeout => 4,
            ErrorKind::NotFound => 5,
            ErrorKind::AlreadyExists => 6,
            ErrorKind::PermissionDenied => 7,
            ErrorKind::Overloaded => 8,
            ErrorKind::Business => 9,
            ErrorKind::Unimplemented => 12,
            ErrorKind::Internal => 13,
            ErrorKind::Unavailable => 14,
            ErrorKind::Unauthenticated => 16,
        }
    }

    /// Whether this kind is a failure of the callee: what circuit breakers count and what
    /// metrics report as a failure rather than a rejection.
    ///
    /// Failures: timeout, overloaded, unavailable, unimplemented, internal, unknown. Not
    /// failures: business errors, errors the caller caused (invalid argument, unauthenticated,
    /// permission denied, not found, already exists) and the caller's own cancellation.
    /// Whether a failure is worth trying again is a narrower question: [`ErrorKind::is_retryable`].
    pub const fn is_failure(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout
                | ErrorKind::Overloaded
                | ErrorKind::Unavailable
                | ErrorKind::Unimplemented
                | ErrorKind::Internal
                | ErrorKind::Unknown
        )
    }

    /// Whether a call that failed this way may succeed if tried again (on another instance, or
    /// later): timeout, overloaded and unavailable. A retry policy still bounds retries by the
    /// context's deadline and a budget. Not retryable: every error that is not a failure, and
    /// unimplemented, internal and unknown, which would fail the same way again.
    pub const fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::Timeout | ErrorKind::Overloaded | ErrorKind::Unavailable
        )
    }

    /// The kind a client gives a gRPC status code it received; `None` for 0 (OK).
    ///
    /// Codes without a kind of their own: `ABORTED` (10, a conflict worth retrying at a higher
    /// level) is unavailable, `OUT_OF_RANGE` (11) is invalid argument, `DATA_LOSS` (15) is
    /// internal; codes above 16 are unknown.
    pub const fn from_grpc_code(code: i32) -> Option<ErrorKind> {
        Some(match code {
            0 => return None,
            1 => ErrorKind::Cancelled,
            3 | 11 => ErrorKind::InvalidArgument,
            4 => ErrorKind::Timeout,
            5 => ErrorKind::NotFound,
            6 => ErrorKind::AlreadyExists,
            7 => ErrorKind::PermissionDenied,
            8 => ErrorKind::Overloaded,
            9 => ErrorKind::Business,
            10 | 14 => ErrorKind::Unavailable,
            12 => ErrorKind::Unimplemented,
            13 | 15 => ErrorKind::Internal,
            16 => ErrorKind::Unauthenticated,
            _ => ErrorKind::Unknown,
        })
    }

    /// The kind a client gives an HTTP error status it received; `None` below 400.
    ///
    /// A 400 cannot tell a business error from a malformed request: it is invalid argument
    /// (neither counts as a failure). 408 and 504 are timeouts; 502 and 503 are unavailable;
    /// other 4xx are invalid argument and other 5xx internal.
    pub const fn from_http_status(status: u16) -> Option<ErrorKind> {
        Some(match status {
            0..=399 => return None,
            401 => ErrorKind::Unauthenticated,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            408 | 504 => ErrorKind::Timeout,
            409 => ErrorKind::AlreadyExists,
            429 => ErrorKind::Overloaded,
            499 => ErrorKind::Cancelled,
            501 => ErrorKind::Unimplemented,
            502 | 503 => ErrorKind::Unavailable,
            400..=499 => ErrorKind::InvalidArgument,
            500..=599 => ErrorKind::Internal,
            _ => ErrorKind::Unknown,
        })
    }

    /// A short, stable, snake_case name, for logs and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Business => "business",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unimplemented => "unimplemented",
            ErrorKind::Internal => "internal",
            ErrorKind::Unknown => "unknown",
        }
    }

    /// Every kind, in declaration order. A slice, not an array, so that adding a kind (the
    /// enum is non-exhaustive) changes no type.
    pub const ALL: &'static [ErrorKind] = &[
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

    /// The kind named `name` by [`as_str`](ErrorKind::as_str), for transports that carry the
    /// kind by name (JSON-RPC error data).
    ///
    /// ```
    /// use kit_core::ErrorKind;
    ///
    /// for &kind in ErrorKind::ALL {
    ///     assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
    /// }
    /// assert_eq!(ErrorKind::from_name("teapot"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of every endpoint: a kind, a message, an optional cause and optional status
/// overrides.
///
/// `Display` prints the message alone, exactly as given, because transports put it on the wire
/// (`{"error":"<message>"}` over HTTP, the status message over gRPC). The cause is reachable
/// through [`std::error::Error::source`]. Cloning is cheap (one reference count), so an error
/// can be kept as a state (an endpoint set that failed to resolve) and handed to many callers.
///
/// ```
/// use kit_core::{Error, ErrorKind};
///
/// let err = Error::business("can't sum two zeroes");
/// assert_eq!(err.to_string(), "can't sum two zeroes");
/// assert_eq!(err.kind(), ErrorKind::Business);
/// assert!(!err.is_failure());
/// assert_eq!(err.http_status(), 400);
///
/// // A transport may want another status for this one error.
/// let err = Error::not_found("no such user").with_http_status(410);
/// assert_eq!((err.http_status(), err.grpc_code()), (410, 5));
/// ```
#[derive(Clone)]
pub struct Error(Arc<Inner>);

#[derive(Clone)]
struct Inner {
    kind: ErrorKind,
    message: Cow<'static, str>,
    http_status: Option<u16>,
    grpc_code: Option<i32>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error(Arc::new(Inner {
            kind,
            message: message.into(),
            http_status: None,
            grpc_code: None,
            source: None,
        }))
    }

    /// A business error: the request was understood and the answer is "no".
    pub fn business(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Business, message)
    }

    /// The request is malformed; for decoders.
    pub fn invalid_argument(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// The caller did not prove who it is.
    pub fn unauthenticated(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Unauthenticated, message)
    }

    /// The caller is not allowed to do this.
    pub fn permission_denied(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::PermissionDenied, message)
    }

    /// The thing to create exists already.
    pub fn already_exists(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::AlreadyExists, message)
    }

    /// The callee does not implement this method.
    pub fn unimplemented(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Unimplemented, message)
    }

    /// The thing asked for does not exist.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// The deadline passed.
    pub fn timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Timeout, message)
    }

    /// The caller cancelled.
    pub fn cancelled(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Cancelled, message)
    }

    /// A limit or queue is full.
    pub fn overloaded(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Overloaded, message)
    }

    /// The callee or its dependency cannot be reached.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Unavailable, message)
    }

    /// A bug or broken invariant.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// Attaches the underlying cause, kept for [`std::error::Error::source`] and logs.
    pub fn with_source(self, source: impl Into<BoxError>) -> Self {
        let source: Arc<dyn std::error::Error + Send + Sync> = Arc::from(source.into());
        self.edit(|inner| inner.source = Some(source))
    }

    /// Overrides the HTTP status transports use for this error (the kind's default otherwise).
    pub fn with_http_status(self, status: u16) -> Self {
        self.edit(|inner| inner.http_status = Some(status))
    }

    /// Overrides the gRPC code transports use for this error (the kind's default otherwise).
    pub fn with_grpc_code(self, code: i32) -> Self {
        self.edit(|inner| inner.grpc_code = Some(code))
    }

    /// The classification.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message, as given (also what `Display` prints).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The chain of underlying causes ([`with_source`](Error::with_source), then theirs),
    /// outermost first, joined by `": "`; `None` without a source. For logs and traces, which
    /// show what went wrong inside; never for the wire, where the [`message`](Error::message)
    /// alone goes.
    pub fn detail(&self) -> Option<String> {
        let first: &(dyn std::error::Error + 'static) = self.0.source.as_deref()?;
        let causes: Vec<String> = std::iter::successors(Some(first), |e| e.source())
            .map(|e| e.to_string())
            .collect();
        Some(causes.join(": "))
    }

    /// The HTTP status for this error: the override if one was set, else the kind's default.
    pub fn http_status(&self) -> u16 {
        self.0.http_status.unwrap_or(self.0.kind.http_status())
    }

    /// The gRPC code for this error: the override if one was set, else the kind's default.
    pub fn grpc_code(&self) -> i32 {
        self.0.grpc_code.unwrap_or(self.0.kind.grpc_code())
    }

    /// Whether this is a business error (kind [`ErrorKind::Business`]).
    pub fn is_business(&self) -> bool {
        self.0.kind == ErrorKind::Business
    }

    /// Whether this is a failure of the callee; see [`ErrorKind::is_failure`].
    pub fn is_failure(&self) -> bool {
        self.0.kind.is_failure()
    }

    /// Whether trying again may succeed; see [`ErrorKind::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        self.0.kind.is_retryable()
    }

    // Errors are built once and then shared, so the Arc is almost always unique here and
    // make_mut does not copy.
    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        f(Arc::make_mut(&mut self.0));
        self
    }
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(status) = self.http_status {
            d.field("http_status", &status);
        }
        if let Some(code) = self.grpc_code {
            d.field("grpc_code", &code);
        }
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let source: &(dyn std::error::Error + Send + Sync + 'static) = self.0.source.as_deref()?;
        Some(source)
    }
}

/// Classifies an error from elsewhere (a tower layer, a service, an I/O call) by its type.
///
/// The error and its chain of sources are searched, outermost first, for something known: a
/// kit [`Error`] is returned as it was; tower's `timeout::error::Elapsed` is a timeout; tower's
/// `load_shed::error::Overloaded` is overloaded; an `std::io::Error` is a timeout (`TimedOut`)
/// or unavailable (connection refused, reset or aborted, not connected, broken pipe). Anything
/// else is [`ErrorKind::Unknown`]. The message is fixed by kind ("timed out", "overloaded",
/// "unavailable", "unknown error"): a foreign error's text may hold internal details (an
/// address, a path, "os error 111"), and transports send the message to remote callers. The
/// original error is always kept as the source, for logs and traces ([`Error::detail`]).
impl From<BoxError> for Error {
    fn from(err: BoxError) -> Self {
        let mut next: Option<&(dyn std::error::Error + 'static)> = Some(&*err);
        let mut found = None;
        while let Some(e) = next {
            if let Some(kit) = e.downcast_ref::<Error>() {
                return kit.clone();
            }
            if let Some(kind) = known_kind(e) {
                found = Some(kind);
                break;
            }
            next = e.source();
        }
        // A fixed message per kind: the foreign error's text (an address, a path, an OS error
        // number) stays in the source, for logs and traces.
        let (kind, message) = match found {
            Some(ErrorKind::Timeout) => (ErrorKind::Timeout, "timed out"),
            Some(ErrorKind::Overloaded) => (ErrorKind::Overloaded, "overloaded"),
            Some(kind) => (kind, "unavailable"),
            None => (ErrorKind::Unknown, "unknown error"),
        };
        Error::new(kind, message).with_source(err)
    }
}

fn known_kind(err: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    use std::io::ErrorKind as Io;
    #[cfg(feature = "tower")]
    if err.is::<tower::timeout::error::Elapsed>() {
        return Some(ErrorKind::Timeout);
    }
    #[cfg(feature = "tower")]
    if err.is::<tower::load_shed::error::Overloaded>() {
        return Some(ErrorKind::Overloaded);
    }
    match err.downcast_ref::<std::io::Error>()?.kind() {
        Io::TimedOut => Some(ErrorKind::Timeout),
        Io::ConnectionRefused
        | Io::ConnectionReset
        | Io::ConnectionAborted
        | Io::NotConnected
        | Io::BrokenPipe => Some(ErrorKind::Unavailable),
        _ => None,
    }
}

/// A response that can carry a business error inside it (go-kit's `Failer`).
///
/// Some wire formats put business errors in the reply (`SumReply { v, err }` answered with gRPC
/// status OK). An endpoint returning such a reply as `Ok` implements `Failer` on it and is
/// wrapped in [`Failing`](crate::Failing), so that logging, metrics, tracing, breakers and
/// retries all see the business error through [`Outcome::of_call`]. The error is returned by
/// value because such replies often hold only its text.
pub trait Failer {
    /// The business error this response carries, if any.
    fn failed(&self) -> Option<Error>;
}

/// What a call's result means to middleware that count: success, business error or failure.
///
/// This is kit-rs's one classification of a call: logging, metrics, tracing, circuit breakers
/// and retries all read it, through [`Outcome::of_call`] (which sees business errors carried
/// in a reply) or, for a bare result, [`Outcome::of`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The call succeeded.
    Success,
    /// The call was answered with "no", or failed through the caller's own doing (invalid
    /// argument, not found, cancelled, ...): the callee is healthy. Not a success in metrics, but
    /// breakers and retries ignore it.
    Rejected,
    /// The callee failed ([`ErrorKind::is_failure`]): breakers and retries count it.
    Failure,
}

impl Outcome {
    /// Classifies a result by its error alone, for results that no endpoint produced.
    ///
    /// ```
    /// use kit_core::{Error, Outcome};
    ///
    /// assert_eq!(Outcome::of(&Ok::<_, Error>(3)), Outcome::Success);
    /// assert_eq!(Outcome::of::<()>(&Err(Error::business("no"))), Outcome::Rejected);
    /// assert_eq!(Outcome::of::<()>(&Err(Error::unavailable("down"))), Outcome::Failure);
    /// ```
    pub fn of<R>(result: &Result<R, Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(err) => Outcome::of_error(err),
        }
    }

    /// Classifies what a call of `endpoint` returned: its error, or the business error its
    /// response carries ([`Endpoint::failed`](crate::Endpoint::failed)). What every middleware
    /// uses.
    pub fn of_call<E, Req>(endpoint: &E, result: &Result<E::Response, Error>) -> Outcome
    where
        E: crate::Endpoint<Req> + ?Sized,
    {
        match result {
            Ok(response) => endpoint
                .failed(response)
                .map_or(Outcome::Success, |err| Outcome::of_error(&err)),
            Err(err) => Outcome::of_error(err),
        }
    }

    /// The error a call of `endpoint` ended with, as [`Outcome::of_call`] sees it: the `Err`, or
    /// the business error carried in the `Ok` response; `None` for a success. For middleware
    /// that report the error (logs, span tags) as well as the outcome.
    pub fn error_of<E, Req>(endpoint: &E, result: &Result<E::Response, Error>) -> Option<Error>
    where
        E: crate::Endpoint<Req> + ?Sized,
    {
        match result {
            Ok(response) => endpoint.failed(response),
            Err(err) => Some(err.clone()),
        }
    }

    /// Classifies an error: a failure if its kind is one ([`ErrorKind::is_failure`]), else
    /// rejected.
    pub fn of_error(err: &Error) -> Outcome {
        if err.is_failure() {
            Outcome::Failure
        } else {
            Outcome::Rejected
        }
    }

    /// A stable label: `success`, `rejected` or `failure`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Rejected => "rejected",
            Outcome::Failure => "failure",
        }
    }
}

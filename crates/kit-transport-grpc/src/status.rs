//! kit errors to gRPC statuses and back: the code from the error's hint (go-kit answered every
//! error with Unknown), the kind carried in metadata so that a kit client gets it back exactly.

use kit_core::{Error, ErrorKind};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

/// The trailer that carries a kit error's kind (`invalid_argument`, `business`, ...).
pub const ERROR_KIND_KEY: &str = "kit-error-kind";

/// The status a server answers `err` with: the code from [`Error::grpc_code`] (invalid argument
/// `INVALID_ARGUMENT`, not found `NOT_FOUND`, timeout `DEADLINE_EXCEEDED`, overloaded
/// `RESOURCE_EXHAUSTED`, a business error `FAILED_PRECONDITION`, ..., or the error's override),
/// the message as given, and the kind in the `kit-error-kind` trailer.
pub fn status_from_error(err: &Error) -> Status {
    let mut status = Status::new(Code::from_i32(err.grpc_code()), err.message());
    status.metadata_mut().insert(
        ERROR_KIND_KEY,
        MetadataValue::from_static(err.kind().as_str()),
    );
    status
}

/// The error a client makes of a status: the kind from the `kit-error-kind` trailer when a kit
/// server sent one, else from the code ([`ErrorKind::from_grpc_code`]), and a message that
/// depends on whose fault it was. A status that says the call was refused (invalid argument,
/// not found, a business error, ...) keeps its message: the remote's account of our request. A
/// failure of the remote (`INTERNAL`, `UNAVAILABLE`, `UNKNOWN`, ...) gets a fixed message ("the
/// upstream service failed: Unavailable"), the remote's text kept as the source, for logs and
/// traces ([`Error::detail`]): a server that answers with this error must not pass on its
/// upstream's internals. The remote's code is not kept as an override: a server answering with
/// this error answers its kind's code.
pub fn error_from_status(status: &Status) -> Error {
    let code = status.code() as i32;
    let kind = status
        .metadata()
        .get(ERROR_KIND_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(ErrorKind::from_name)
        .or_else(|| ErrorKind::from_grpc_code(code))
        .unwrap_or(ErrorKind::Unknown);
    if !kind.is_failure() {
        return Error::new(kind, status.message().to_owned());
    }
    Error::new(
        kind,
        format!("the upstream service failed: {:?}", status.code()),
    )
    .with_source(format!("{:?}: {}", status.code(), status.message()))
}

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
/// server sent one, else from the code ([`ErrorKind::from_grpc_code`]); the code is kept as the
/// error's gRPC code, and the message is the status message.
pub fn error_from_status(status: &Status) -> Error {
    let code = status.code() as i32;
    let kind = status
        .metadata()
        .get(ERROR_KIND_KEY)
        .and_then(|v| v.to_str().ok())
        .and_then(ErrorKind::from_name)
        .or_else(|| ErrorKind::from_grpc_code(code))
        .unwrap_or(ErrorKind::Unknown);
    Error::new(kind, status.message().to_owned()).with_grpc_code(code)
}

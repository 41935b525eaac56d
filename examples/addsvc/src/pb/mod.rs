//! The gRPC code generated from `proto/addsvc.proto` (committed; `tests/generated_code.rs`
//! checks it is fresh).
#![allow(clippy::all, missing_docs, unreachable_pub)]

include!("pb.rs");

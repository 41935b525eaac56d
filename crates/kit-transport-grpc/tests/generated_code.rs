//! The generated code of the test proto is committed (tests/generated/), so that building the
//! crate and its tests needs no `protoc`. This test regenerates it with protox (a protobuf
//! compiler in Rust) and fails if the committed copy is stale; `KIT_REGENERATE=1 cargo test -p
//! kit-transport-grpc --test generated_code` rewrites it.

use std::path::Path;

#[test]
fn the_committed_generated_code_matches_the_proto() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempdir();
    let fds = protox::compile([root.join("proto/kittest.proto")], [root.join("proto")])
        .expect("the test proto compiles");
    tonic_prost_build::configure()
        .out_dir(&out)
        .compile_fds(fds)
        .expect("code generation");
    let fresh = std::fs::read_to_string(out.join("kittest.rs")).expect("generated kittest.rs");
    let committed_path = root.join("tests/generated/kittest.rs");
    if std::env::var_os("KIT_REGENERATE").is_some() {
        std::fs::write(&committed_path, &fresh).expect("writing the generated code");
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        committed == fresh,
        "tests/generated/kittest.rs is stale: run KIT_REGENERATE=1 cargo test -p kit-transport-grpc --test generated_code"
    );
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kit-grpc-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temp dir");
    dir
}

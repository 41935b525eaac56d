//! addsvc's gRPC code is generated from proto/addsvc.proto and committed (src/pb/pb.rs), so that
//! building needs no `protoc`. This test regenerates it with protox and fails if the committed
//! copy is stale; `KIT_REGENERATE=1 cargo test -p addsvc --test generated_code` rewrites it.

use std::path::Path;

#[test]
fn the_committed_generated_code_matches_the_proto() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("addsvc-gen-{}", std::process::id()));
    std::fs::create_dir_all(&out).expect("a temp dir");
    let fds = protox::compile([root.join("proto/addsvc.proto")], [root.join("proto")])
        .expect("the proto compiles");
    tonic_prost_build::configure()
        .out_dir(&out)
        .compile_fds(fds)
        .expect("code generation");
    let fresh = std::fs::read_to_string(out.join("pb.rs")).expect("generated pb.rs");
    let committed_path = root.join("src/pb/pb.rs");
    if std::env::var_os("KIT_REGENERATE").is_some() {
        std::fs::write(&committed_path, &fresh).expect("writing the generated code");
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&out);
    assert!(
        committed == fresh,
        "src/pb/pb.rs is stale: run KIT_REGENERATE=1 cargo test -p addsvc --test generated_code"
    );
}

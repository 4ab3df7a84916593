//! Build script: points the worker at the libtorch it was built against, and records that
//! libtorch's version.
//!
//! torch-sys links libtorch's libraries by name, so the binary needs a run-time search path:
//! `$ORIGIN/../lib` for the image layout (`/opt/modelops/bin`, `/opt/modelops/lib`), then the
//! build machine's torch library folder for local runs and tests.
//!
//! It also generates the gRPC service of `serve` from `proto/inference.proto`, compiled by protox
//! (a protobuf compiler in Rust: no `protoc` on the build machine).
use std::{env, fs, path::PathBuf};

fn main() {
    grpc_service();
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let lib = env::var("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from).ok();
    let mut rpath = String::from("$ORIGIN/../lib");
    if let Some(lib) = &lib {
        rpath.push(':');
        rpath.push_str(&lib.display().to_string());
    }
    // Every target (the binary and its tests) links libtorch, so each needs the search path.
    println!("cargo:rustc-link-arg=-Wl,-rpath,{rpath}");

    let version = lib
        .as_ref()
        .and_then(|lib| fs::read_to_string(lib.join("../version.py")).ok())
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=MODELOPS_LIBTORCH_VERSION={version}");
    println!(
        "cargo:rustc-env=MODELOPS_LIBTORCH_LIB={}",
        lib.map(|l| l.display().to_string()).unwrap_or_default()
    );
}

/// The messages and the server (and, for tests, the client) of `inference.GRPCInferenceService`.
fn grpc_service() {
    const PROTO: &str = "proto/inference.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    let descriptors = protox::compile([PROTO], ["proto"]).expect("proto/inference.proto compiles");
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)
        .expect("the gRPC service's code generates");
}

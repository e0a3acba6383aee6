//! With the `grpc` feature, compiles `proto/helloworld.proto` with protox (pure Rust), so no system
//! `protoc` is needed; without it, does nothing (its build-dependencies are not even compiled).
//!
//! Besides the generated code, the encoded file descriptor set is written to
//! `OUT_DIR/helloworld_descriptor.bin`; the gRPC reflection service serves it. The generated
//! client is built without tonic's transport (`build_transport(false)`): the library has no
//! client stack, so callers construct `GreeterClient::new(channel)` from a channel of their own.

#[cfg(feature = "grpc")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::{env, fs, path::PathBuf};

    use prost::Message;

    const PROTO: &str = "proto/helloworld.proto";

    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-changed=build.rs");

    let descriptors = protox::compile([PROTO], ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("helloworld_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}

#[cfg(not(feature = "grpc"))]
fn main() {
    // Only build.rs itself can make cargo rerun this, so a build without `grpc` never pays for it.
    println!("cargo:rerun-if-changed=build.rs");
}

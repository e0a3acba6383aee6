//! Compiles `proto/helloworld.proto` with protox (pure Rust), so no system `protoc` is needed.
//!
//! Besides the generated code, the encoded file descriptor set is written to
//! `OUT_DIR/helloworld_descriptor.bin`; the gRPC reflection service serves it.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTO: &str = "proto/helloworld.proto";

fn main() -> Result<(), Box<dyn std::error::Error>> {
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
        .compile_fds(descriptors)?;
    Ok(())
}

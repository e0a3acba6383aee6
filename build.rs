//! With the `grpc` feature, compiles `proto/helloworld.proto` (the library's sample service) and
//! `proto/todo.proto` (the `todo_server` example's) with protox (pure Rust), so no system `protoc`
//! is needed; without it, does nothing (its build-dependencies are not even compiled).
//!
//! Besides the generated code, each proto's encoded file descriptor set is written to
//! `OUT_DIR/{name}_descriptor.bin` for the gRPC reflection service. `OUT_DIR` is visible to every
//! target of this package, so the example includes `todo.v1` itself, as a user's crate would. The generated
//! client is built without tonic's transport (`build_transport(false)`): the library has no
//! client stack, so callers construct `GreeterClient::new(channel)` from a channel of their own.

#[cfg(feature = "grpc")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use std::{env, fs, path::PathBuf};

    use prost::Message;

    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    for name in ["helloworld", "todo"] {
        let proto = format!("proto/{name}.proto");
        println!("cargo:rerun-if-changed={proto}");
        let descriptors = protox::compile([&proto], ["proto"])?;
        fs::write(
            out_dir.join(format!("{name}_descriptor.bin")),
            descriptors.encode_to_vec(),
        )?;
        tonic_prost_build::configure()
            .build_server(true)
            .build_client(true)
            .build_transport(false)
            .compile_fds(descriptors)?;
    }
    Ok(())
}

#[cfg(not(feature = "grpc"))]
fn main() {
    // Only build.rs itself can make cargo rerun this, so a build without `grpc` never pays for it.
    println!("cargo:rerun-if-changed=build.rs");
}

//! Code generated from `proto/helloworld.proto` by `build.rs` (protox + tonic-prost-build).
//!
//! `greeter_server` holds the service trait [`GreeterService`](super::GreeterService) implements, `greeter_client`
//! the client any Rust program can call the server with. The generated code is not ours to lint, so
//! its `allow`s live here and nowhere else.
#![allow(clippy::all, missing_docs, unreachable_pub)]

tonic::include_proto!("helloworld");

/// The encoded `FileDescriptorSet` of `helloworld.proto`, as the reflection service serves it.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/helloworld_descriptor.bin"));

//! Code generated from `proto/helloworld.proto` by `build.rs`.
#![allow(clippy::all, missing_docs, unreachable_pub)]

tonic::include_proto!("helloworld");

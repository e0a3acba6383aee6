//! The gRPC side (work in progress).
pub mod pb;

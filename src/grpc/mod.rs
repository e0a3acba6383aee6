//! The gRPC side (work in progress).

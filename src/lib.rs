//! wsgrpc: composable WebSocket handlers and a production-grade gRPC server on tokio.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

mod error;
pub mod grpc;
pub mod ws;

pub use error::{BoxError, Error, Result};

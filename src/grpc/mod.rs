//! The gRPC side: the standard `helloworld.Greeter` service and a production-ready server for it.
//!
//! ```no_run
//! use wsgrpc::grpc::{Config, GrpcServer};
//!
//! #[tokio::main]
//! async fn main() -> wsgrpc::Result<()> {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
//!     let shutdown = async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     };
//!     GrpcServer::new()
//!         .config(Config::default().timeout(std::time::Duration::from_secs(10)))
//!         .serve(listener, shutdown)
//!         .await
//! }
//! ```
//!
//! Any helloworld client, in any language, then gets `Hello world` for the name `world`.
//!
//! The module splits the work so that each part can be replaced on its own:
//!
//! - [`pb`] is the code `build.rs` generates from `proto/helloworld.proto` (with protox, so no
//!   `protoc` is needed), plus the descriptor set reflection serves.
//! - [`Greeter`] implements the service: it validates names (empty or over-long names get
//!   `INVALID_ARGUMENT`) and streams replies with backpressure. What a greeting says comes from a
//!   [`Greet`]: [`Hello`] by default, your own type, or a closure through [`greet_fn`].
//! - [`GrpcServer`] adds health, reflection, limits, deadlines, compression, auth and TLS, and serves
//!   with a graceful shutdown. [`GrpcServer::into_parts`] hands out the assembled [`Routes`] and
//!   [`GrpcLayer`] instead, for a server that shares its port with other protocols.
//!
//! # Status codes
//!
//! | situation | status |
//! | --- | --- |
//! | empty name, or a name longer than [`Greeter::max_name_len`] | `INVALID_ARGUMENT` |
//! | request larger than [`Config::max_decoding_message_size`] | `OUT_OF_RANGE` (tonic's choice; grpc-go says `RESOURCE_EXHAUSTED`) |
//! | compressed request that inflates past the limit | `RESOURCE_EXHAUSTED` |
//! | bytes that are not a valid `HelloRequest` | `INTERNAL` (as tonic and grpc-go answer a decode error) |
//! | `grpc-timeout` or [`Config::timeout`] passed | `DEADLINE_EXCEEDED` |
//! | [`Config::concurrency_limit`] reached with [`Config::load_shed`] | `RESOURCE_EXHAUSTED` |
//! | bearer token missing or wrong | `UNAUTHENTICATED` |
//! | request compressed with an encoding not in [`Config::accept_compressed`] | `UNIMPLEMENTED` |
//!
//! [`Routes`]: tonic::service::Routes

mod config;
mod greet;
mod greeter;
mod health;
pub mod layer;
pub mod pb;
pub(crate) mod serve;
mod server;
mod status;

pub use config::{Config, DEFAULT_MAX_MESSAGE_SIZE};
pub use greet::{Greet, GreetFn, Hello, greet_fn};
pub use greeter::{DEFAULT_MAX_NAME_LEN, DEFAULT_STREAM_REPLIES, Greeter, ReplyStream};
pub use health::HealthHandle;
pub use layer::GrpcLayer;
pub use server::{GrpcParts, GrpcServer};
/// Compression encodings for [`Config::accept_compressed`] and [`Config::send_compressed`].
pub use tonic::codec::CompressionEncoding;

//! The gRPC side: a production server builder for any tonic service, and the standard
//! `helloworld.Greeter` as its sample.
//!
//! ```no_run
//! use wsgrpc::grpc::{Config, GreeterService, GrpcServer, pb};
//! use wsgrpc::grpc::pb::greeter_server::GreeterServer;
//!
//! #[tokio::main]
//! async fn main() -> wsgrpc::Result<()> {
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
//!     let shutdown = async {
//!         let _ = tokio::signal::ctrl_c().await;
//!     };
//!     GrpcServer::builder()
//!         // Your own service goes here the same way: `TodosServer::new(todos)`.
//!         .add_service(GreeterServer::new(GreeterService::default()))
//!         .file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
//!         .config(Config::default().timeout(std::time::Duration::from_secs(10)))
//!         .serve(listener, shutdown)
//!         .await
//! }
//! ```
//!
//! Any helloworld client, in any language, then gets `Hello world` for the name `world`;
//! `grpc.health.v1.Health/Check` says SERVING for `helloworld.Greeter`, and reflection lists it.
//!
//! The module splits the work so that each part can be replaced on its own:
//!
//! - [`GrpcServer`] serves any tonic services ([`add_service`](GrpcServer::add_service)) and adds
//!   health ([`HealthHandle`]), reflection ([`ReflectionService`]), the request layers of
//!   [`layer`] (415 for non-gRPC requests, a tracing span per call, auth, deadline, concurrency
//!   limit), tower layers of your own, limits, compression and TLS, and serves with a graceful
//!   shutdown. [`GrpcServer::into_parts`] hands out the assembled [`Routes`] and [`GrpcLayer`]
//!   instead, for a server that shares its port with other protocols.
//! - [`pb`] is the code `build.rs` generates from `proto/helloworld.proto` (with protox, so no
//!   `protoc` is needed), plus the descriptor set reflection serves.
//! - [`GreeterService`] implements the sample service: it validates names (empty or over-long
//!   names get `INVALID_ARGUMENT`) and streams replies with backpressure. What a greeting says
//!   comes from a [`Greet`]: [`Hello`] by default, your own type, or a closure through
//!   [`greet_fn`].
//!
//! # Status codes
//!
//! | situation | answer |
//! | --- | --- |
//! | `content-type` missing or not `application/grpc*` | HTTP `415`, `grpc-status` INVALID_ARGUMENT (gRPC HTTP/2 spec) |
//! | empty name, or a name longer than [`GreeterService::max_name_len`] | `INVALID_ARGUMENT` |
//! | request larger than [`Config::max_decoding_message_size`] | `OUT_OF_RANGE` (tonic's choice; grpc-go says `RESOURCE_EXHAUSTED`) |
//! | compressed request that inflates past the limit | `RESOURCE_EXHAUSTED` |
//! | bytes that are not a valid request message | `INTERNAL` (as tonic and grpc-go answer a decode error) |
//! | `grpc-timeout` or [`Config::timeout`] passed | `DEADLINE_EXCEEDED` |
//! | [`Config::concurrency_limit`] reached with [`Config::load_shed`] | `RESOURCE_EXHAUSTED` |
//! | [`Authorize`](layer::Authorize) refused (bearer token missing or wrong) | its status: `UNAUTHENTICATED` or `PERMISSION_DENIED` |
//! | request compressed with an encoding not in [`Config::accept_compressed`] | `UNIMPLEMENTED` |
//! | unknown service or method | `UNIMPLEMENTED` |
//! | health `Check` of an unknown service | `NOT_FOUND`; `Watch` sends SERVICE_UNKNOWN and stays open |
//! | reflection request for an unknown symbol, file or extension | an `error_response` (NOT_FOUND) on the same stream, which stays open |
//!
//! [`Routes`]: tonic::service::Routes

mod config;
mod greet;
mod greeter;
mod health;
pub mod layer;
pub mod pb;
mod reflection;
pub(crate) mod serve;
mod server;
mod status;

pub use config::{Config, DEFAULT_MAX_MESSAGE_SIZE};
pub use greet::{Greet, GreetFn, Hello, greet_fn};
pub use greeter::{DEFAULT_MAX_NAME_LEN, DEFAULT_STREAM_REPLIES, GreeterService, ReplyStream};
pub use health::{HealthHandle, HealthService, ServingStatus, WatchStream};
pub use layer::GrpcLayer;
pub use reflection::{ReflectionService, ResponseStream as ReflectionStream};
pub use server::{GrpcParts, GrpcServer};
/// Compression encodings for [`Config::accept_compressed`] and [`Config::send_compressed`].
pub use tonic::codec::CompressionEncoding;

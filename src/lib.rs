//! wsgrpc: composable WebSocket handlers and a production-grade gRPC server on tokio.
//!
//! A complete echo server:
//!
//! ```no_run
//! use wsgrpc::ws::{handler_fn, Message, Server, SessionHandle};
//!
//! #[tokio::main]
//! async fn main() -> wsgrpc::Result<()> {
//!     let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!         session.send(message).await
//!     });
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//!     println!("listening on ws://{}/ws", listener.local_addr()?);
//!     Server::new(echo).serve(listener, wsgrpc::shutdown_signal()).await
//! }
//! ```
//!
//! # Layout
//!
//! - [`ws`]: the WebSocket side. Implement [`ws::Handler`] (or pass a closure to
//!   [`ws::handler_fn`]), wrap it in [`ws::Layer`]s, serve it with [`ws::Server`] or run it on a
//!   connection hyper or axum upgraded with [`ws::serve_connection`].
//! - [`grpc`]: the gRPC side: the generated Greeter service, a default implementation to extend, and
//!   a server builder with health, reflection, limits and graceful shutdown.
//! - [`serve`]: one listener for WebSocket, gRPC, gRPC-Web and a web page, and an axum adapter.
//! - [`client`]: a WebSocket client running the same `Handler`, with opt-in reconnect.
//! - [`rpc`]: typed request/response calls (and pushes) over a WebSocket.
//! - `testing` (feature `test-util`): an in-memory harness to test handlers without sockets.
//! - [`origin`]: RFC 6454 origins and the one same-origin comparison the WebSocket and gRPC-Web
//!   checks share.
//! - [`Error`] and [`Result`]: one error type for both sides.
//!
//! # Design
//!
//! Payloads are [`bytes::Bytes`] end to end: an echoed or broadcast message is never copied. Every
//! queue between a peer and memory is bounded, and every wait has a timeout. Bad input is answered
//! with the close code or status the protocol prescribes, and ends only the connection it came from.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod client;
mod error;
pub mod grpc;
pub mod net;
pub mod origin;
pub mod rpc;
pub mod serve;
#[cfg(feature = "test-util")]
pub mod testing;
pub mod ws;

pub use error::{BoxError, Error, Result};
pub use net::{Shutdown, shutdown_signal};

/// Compiles the README's Rust examples as doctests, so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

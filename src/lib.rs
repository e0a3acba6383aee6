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
//! Each module sits behind the cargo feature named after it, so a WebSocket-only build compiles
//! no gRPC, HTTP/2 or TLS code (the README's feature table lists what each one costs):
//!
//! - [`ws`] (feature `ws`, on by default): the WebSocket side. Implement [`ws::Handler`] (or pass
//!   a closure to [`ws::handler_fn`]), wrap it in [`ws::Layer`]s, serve it with [`ws::Server`] or
//!   run it on a connection hyper or axum upgraded with [`ws::serve_connection`]. Typed JSON
//!   messages need `json`.
//! - `grpc` (feature `grpc`): the gRPC side: a server builder for any tonic service, with
//!   health, reflection, limits, auth, tracing, tower layers and graceful shutdown; the generated
//!   helloworld Greeter and its default implementation are the sample it serves.
//! - `serve` (feature `serve`): one listener for WebSocket (HTTP/1.1 and HTTP/2), gRPC, a web
//!   page and any fallback tower service, under tower layers; gRPC-Web for browsers with
//!   `grpc-web`, and an axum adapter (route and extractor) with `axum`.
//! - `client` (feature `client`): a WebSocket client running the same `Handler`, with opt-in
//!   reconnect.
//! - `rpc` (feature `json`; its client half also needs `client`): typed request/response calls
//!   (and pushes) over a WebSocket.
//! - `testing` (feature `test-util`): an in-memory harness to test handlers without sockets.
//! - `metrics` (feature `metrics`): the names of the counters, gauges and histograms the crate
//!   records through the `metrics` facade (connections, messages, closes, gRPC calls by method
//!   and status); install a recorder such as `metrics-exporter-prometheus` to export them.
//! - `net` (features `ws` or `grpc`): the serving core every server runs on: any listener (TCP,
//!   Unix), one accept loop, TLS, and [`Shutdown`].
//! - `origin` (feature `ws`): RFC 6454 origins and the one same-origin comparison the WebSocket
//!   and gRPC-Web checks share.
//! - `tls` adds `wss://`, `https://` and gRPC over TLS (rustls) to whichever of the above are on.
//! - [`Error`] and [`Result`]: one error type for both sides; [`http`] is re-exported, so a handler
//!   that answers with a `StatusCode` needs no second dependency.
//!
//! # Design
//!
//! Payloads are [`bytes::Bytes`] end to end: an echoed or broadcast message is never copied. Every
//! queue between a peer and memory is bounded, and every wait has a timeout. Bad input is answered
//! with the close code or status the protocol prescribes, and ends only the connection it came from.
#![cfg_attr(docsrs, feature(doc_cfg))]
// Docs link across features (the ws docs point at the json and serve items). docs.rs and CI build
// them with every feature, where a broken link is an error; a build with fewer features keeps the
// text and drops the links quietly. This list and the one on `ReadmeDoctests` below name every
// feature in Cargo.toml; a feature added there belongs in both.
#![cfg_attr(
    not(all(
        feature = "ws",
        feature = "client",
        feature = "json",
        feature = "grpc",
        feature = "grpc-web",
        feature = "serve",
        feature = "axum",
        feature = "tls",
        feature = "test-util",
        feature = "metrics",
        feature = "rate-limit",
        feature = "deflate",
        feature = "redis",
        feature = "nats"
    )),
    allow(rustdoc::broken_intra_doc_links)
)]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![cfg_attr(not(test), warn(clippy::unwrap_used))]

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub mod client;
mod error;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub mod metrics;
// Without the feature: the same recording functions, empty, so call sites need no `#[cfg]`.
#[cfg(not(feature = "metrics"))]
mod metrics;
#[cfg(any(feature = "ws", feature = "grpc"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "ws", feature = "grpc"))))]
pub mod net;
#[cfg(feature = "ws")]
#[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
pub mod origin;
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub mod rpc;
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub mod serve;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
#[cfg(feature = "ws")]
#[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
pub mod ws;

pub use error::{BoxError, Error, Result};
/// The `http` crate (request, response, header and status types), re-exported so that code naming
/// `StatusCode` or `HeaderMap` in a handler or guard needs no dependency of its own, at the version
/// this crate was built with.
pub use http;
#[cfg(any(feature = "ws", feature = "grpc"))]
pub use net::{Shutdown, shutdown_signal};

/// Compiles the README's Rust examples as doctests, so the README cannot drift from the API. The
/// README shows every feature, so this only runs when all of them are on (`--all-features`).
#[cfg(all(
    doctest,
    feature = "ws",
    feature = "client",
    feature = "json",
    feature = "grpc",
    feature = "grpc-web",
    feature = "serve",
    feature = "axum",
    feature = "tls",
    feature = "test-util",
    feature = "metrics",
    feature = "rate-limit",
    feature = "deflate",
    feature = "redis",
    feature = "nats"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

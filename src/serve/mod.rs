//! One port for everything: WebSocket, gRPC, gRPC-Web and a web page on a single listener.
//!
//! ```no_run
//! use wsgrpc::grpc::GrpcServer;
//! use wsgrpc::serve::{App, Assets, Cors};
//! use wsgrpc::ws::{handler_fn, Message, Router, SessionHandle};
//!
//! #[tokio::main]
//! async fn main() -> wsgrpc::Result<()> {
//!     let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!         session.send(message).await
//!     });
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     println!("listening on http://{}", listener.local_addr()?);
//!     App::new()
//!         .websocket(Router::new().route("/ws", echo))   // other paths: 404
//!         .grpc(GrpcServer::new().into_parts().await?)    // Greeter, health, reflection
//!         .grpc_web(Cors::default())                      // browsers, same origin only
//!         .assets(Assets::new().file("/", "text/html; charset=utf-8", "<!doctype html>hi"))
//!         .serve(listener, wsgrpc::shutdown_signal())
//!         .await
//! }
//! ```
//!
//! Real deployments expose one port behind one load balancer, and browsers cannot speak native
//! gRPC. This module joins the two sides of the crate (it is the only one that imports both `ws`
//! and `grpc`) and tells requests apart by protocol, in this order:
//!
//! | request | goes to |
//! |---|---|
//! | missing, repeated or invalid `Host` / `:authority` (RFC 9112 section 3.2) | `400` |
//! | `Upgrade: websocket` (HTTP/1.1), or an extended CONNECT (HTTP/2, RFC 8441: `:method CONNECT` with a `:protocol`) | the WebSocket [`Handler`](crate::ws::Handler), with its router and guards (the fallback when the app has no handler but has a fallback) |
//! | `content-type: application/grpc-web*` (HTTP/1.1 or HTTP/2), and CORS preflights | the gRPC services through tonic-web, under the [`Cors`] policy |
//! | `content-type: application/grpc*` (HTTP/2) | the gRPC services (yours, health, reflection) behind their [`GrpcLayer`](crate::grpc::GrpcLayer) (the fallback when the app has none, else `UNIMPLEMENTED`) |
//! | anything else | the [`Assets`] by exact path, then the [`fallback`](App::fallback) (an axum `Router`, tower-http's `ServeDir`, any tower service), then `404` |
//!
//! [`App::layer`] wraps all of it in tower middleware (tower-http's `TraceLayer`,
//! `CompressionLayer`, `SetRequestIdLayer`...): every request and response the connection
//! carries, WebSocket upgrade requests and their `101`/`200` included, but not the WebSocket
//! frames after them.
//!
//! WebSockets run over HTTP/1.1 (RFC 6455, `101`) or over one stream of an HTTP/2 connection
//! (RFC 8441, `200`; the server advertises `SETTINGS_ENABLE_CONNECT_PROTOCOL`) with the same
//! handler, guards, limits and shutdown; [`Session::http_version`](crate::ws::Session::http_version)
//! tells which. Browsers use HTTP/2 WebSockets only on `https://` pages served over h2 (with
//! [`App::tls`]); `ws://` stays HTTP/1.1.
//!
//! So a non-gRPC content type (`text/plain`, or none) sent to a gRPC path on this port is plain
//! HTTP: it goes to the assets (usually `404`), never to a gRPC service. The gRPC-only server
//! ([`GrpcServer::serve`](crate::grpc::GrpcServer::serve)) answers it `415 Unsupported Media Type`
//! as the gRPC HTTP/2 spec says, and so does [`axum::grpc_router`] (the check is in the
//! `GrpcLayer`).
//!
//! The limits of both sides apply on this path as on their own servers: from
//! [`ws::Config`](crate::ws::Config) the message and frame sizes, keepalive, queue bound,
//! handshake timeout, `max_connections` (`503`) and shutdown wait; from
//! [`grpc::Config`](crate::grpc::Config) the HTTP/2 keepalive, `max_concurrent_streams`, window
//! sizes, message limits, deadline, concurrency limit and drain deadline (tonic's own `Server`
//! settings do not carry over to a hyper server by themselves; the HTTP/2 ones are applied by the
//! same code as in gRPC's accept loop). The listener's own settings
//! ([`App::request_head_timeout`], [`App::tcp_nodelay`]) add an HTTP/1.1 request head timeout
//! against slowloris clients and `TCP_NODELAY`; accepting, TLS and draining are the crate's
//! serving core ([`crate::net`]).
//!
//! With the `tls` feature, [`App::tls`] serves `https://`, `wss://` and gRPC over TLS on the same
//! port (ALPN `h2` and `http/1.1`). Apps already written with axum can either become the
//! [`fallback`](App::fallback) of an `App`, or mount a handler with [`axum::websocket`] (or
//! the [`axum::WebSocketUpgrade`] extractor) and the gRPC services with [`axum::grpc_router`].

mod app;
mod assets;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod axum;
#[cfg(feature = "grpc-web")]
mod cors;
mod service;
mod websocket;

pub use app::{App, DEFAULT_REQUEST_HEAD_TIMEOUT, NoWebSocket};
pub use assets::Assets;
#[cfg(feature = "grpc-web")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc-web")))]
pub use cors::{Cors, CorsService};
pub use service::{Body, BoxHttpService, box_http_service};

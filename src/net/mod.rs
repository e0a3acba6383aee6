//! The serving core under every server of the crate: where connections come from ([`Listener`]),
//! how they are accepted, secured and counted, and how a server stops ([`Shutdown`]).
//!
//! [`ws::Server`](crate::ws::Server), [`GrpcServer`](crate::grpc::GrpcServer) and
//! [`App`](crate::serve::App) differ only in what they do with an accepted connection. Everything
//! before that is here, once:
//!
//! - **one serve shape**: `server.serve(listener, shutdown)` (mini-redis's `run(listener,
//!   shutdown)`), for any [`Listener`]: TCP, or a Unix socket;
//! - **one accept-error policy**: errors of one connection are skipped, running out of file
//!   descriptors (`EMFILE`/`ENFILE`) backs off (10 ms doubling to 1 s) instead of spinning;
//! - **one TLS acceptor** (feature `tls`, `TlsConfig`): a handshake timeout, and one ALPN rule: a
//!   configuration that offers no ALPN protocol gets the server's own (`http/1.1` for
//!   `ws::Server`, `h2` for `GrpcServer`, `h2` then `http/1.1` for `App`);
//! - **one shutdown type**, [`Shutdown`]: the accept loop stops, handshakes in progress are
//!   dropped, connections wind down gracefully, and what is left after the server's deadline is
//!   closed.
//!
//! ```no_run
//! use wsgrpc::ws::{handler_fn, Message, Server, SessionHandle};
//!
//! # async fn example() -> wsgrpc::Result<()> {
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! // The same handler on TCP and on a Unix socket, stopped together.
//! let shutdown = wsgrpc::Shutdown::new();
//! let tcp = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! let unix = tokio::net::UnixListener::bind("/tmp/echo.sock")?;
//! let on_tcp = Server::new(echo.clone()).serve(tcp, shutdown.triggered());
//! let on_unix = Server::new(echo).serve(unix, shutdown.triggered());
//! tokio::spawn(async move {
//!     wsgrpc::shutdown_signal().await;
//!     shutdown.trigger();
//! });
//! let (tcp, unix) = tokio::join!(on_tcp, on_unix);
//! tcp.and(unix)
//! # }
//! ```

mod listener;
pub(crate) mod serve;
mod shutdown;
#[cfg(feature = "tls")]
pub(crate) mod tls;

pub use listener::{Listener, TcpKeepalive};
pub use shutdown::{Shutdown, shutdown_signal};
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use tls::TlsConfig;

//! Typed request/response calls over a WebSocket, with server push alongside.
//!
//! The server implements [`RpcService`] and serves it with [`RpcHandler`] (a regular
//! [`Handler`](crate::ws::Handler), so it composes with layers, the router and the hub). The
//! client side is [`RpcClient`]: `client.call(&request).await` returns the typed response. Many
//! calls can be in flight on one connection at once; each reply finds its caller by a correlation
//! id.
//!
//! ```no_run
//! use serde::{Deserialize, Serialize};
//! use wsgrpc::rpc::{RpcError, RpcHandler, RpcService};
//! use wsgrpc::ws::{Server, SessionHandle};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Add { a: i64, b: i64 }
//!
//! struct Calculator;
//!
//! impl RpcService for Calculator {
//!     type Request = Add;
//!     type Response = i64;
//!
//!     async fn call(&self, _session: &SessionHandle, add: Add) -> Result<i64, RpcError> {
//!         add.a.checked_add(add.b).ok_or_else(|| RpcError::new("overflow", "sum does not fit"))
//!     }
//! }
//!
//! # async fn example() -> wsgrpc::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9002").await?;
//! Server::new(RpcHandler::new(Calculator))
//!     .serve(listener, wsgrpc::shutdown_signal())
//!     .await
//! # }
//! ```
//!
//! # Wire format
//!
//! One JSON text message per envelope:
//!
//! | direction | envelope |
//! |---|---|
//! | call | `{"id": 7, "call": <request>}` |
//! | reply | `{"id": 7, "ok": <response>}` |
//! | error reply | `{"id": 7, "error": {"code": "...", "message": "..."}}` |
//! | server push | `{"push": <value>}` |
//!
//! # Bad input
//!
//! - Server side: a message that is not a JSON envelope, or a call whose payload does not fit
//!   `Request`, gets an error reply with code `bad_request` (and the call's id when it could be
//!   read, else `null`). The connection stays open; other calls are unaffected.
//! - Client side: a reply for an id nobody waits for (it timed out, or was never sent) and a
//!   message that is not an envelope are logged at `warn`, counted
//!   ([`RpcClient::unknown_replies`], [`RpcClient::malformed_messages`]) and dropped. Neither side
//!   ever panics or closes the connection over it.
//! - A reply whose payload does not fit `Response` fails that call with [`Error::Json`](crate::Error::Json).
//! - When the connection drops, every call waiting on it fails with
//!   [`Error::ConnectionClosed`](crate::Error::ConnectionClosed); a call that outlives its timeout
//!   fails with [`Error::Timeout`](crate::Error::Timeout).

#[cfg(feature = "client")]
mod client;
mod envelope;
mod service;

#[cfg(feature = "client")]
#[cfg_attr(docsrs, doc(cfg(feature = "client")))]
pub use client::{RpcClient, RpcClientBuilder};
pub use envelope::RpcError;
pub use service::{RpcHandler, RpcService, push};

//! The WebSocket side: handlers, sessions, layers and the server that runs them.
//!
//! ```no_run
//! use wsgrpc::ws::{Handler, Message, Server, Session};
//!
//! /// Counts the messages of each connection and answers with the running count.
//! struct Counter;
//!
//! #[derive(Default)]
//! struct Count(u64);
//!
//! impl Handler for Counter {
//!     async fn on_message(&self, session: &mut Session, _message: Message) -> wsgrpc::Result<()> {
//!         let count = session.extensions_mut().get_or_default::<Count>();
//!         count.0 += 1;
//!         let reply = count.0.to_string();
//!         session.send(reply).await
//!     }
//! }
//!
//! # async fn example() -> wsgrpc::Result<()> {
//! Server::bind("127.0.0.1:9001").await?.serve(Counter).await
//! # }
//! ```
//!
//! # Pieces
//!
//! - [`Handler`]: what an endpoint does with a connection (upgrade, open, message, close hooks);
//!   [`handler_fn`] makes one from a closure.
//! - [`Session`]: one connection as a handler sees it; [`SessionHandle`] sends into it from other
//!   tasks. Outgoing messages go through a bounded queue.
//! - [`Layer`] and [`HandlerBuilder`]: wrap handlers in middleware handlers; [`layer`] has the
//!   ready ones (tracing, rate limit, timeout) and [`guard`] the upgrade guards (origin, auth,
//!   subprotocol).
//! - [`Router`]: dispatch by path, with captures ([`PathParams`]); unknown paths get `404`.
//! - [`Json`] and [`TypedHandler`] (feature `json`): receive and send `serde` types as JSON.
//! - [`Hub`]: broadcast to all, to a room or to one connection, without copying payloads or
//!   waiting on slow consumers.
//! - [`Upgrade`] and [`Rejection`]: the HTTP request before the `101`, and how to refuse it.
//! - [`Server`] and [`Config`]: accept loop, limits, keepalive, graceful shutdown.
//! - [`serve_connection`]: run a handler on a stream upgraded elsewhere (hyper, axum);
//!   [`serve_connection_with`] and [`Connections`] give such connections a graceful shutdown.
//!
//! # How each failure is answered
//!
//! | what happened | close code |
//! |---|---|
//! | text message with invalid UTF-8 | 1007 |
//! | message over [`Config::max_message_size`] or frame over [`Config::max_frame_size`] | 1009 |
//! | protocol violation (reserved bits, unknown opcode, unmasked client frame, ...) | 1002 |
//! | a hook returned an error or panicked | 1011 |
//! | server shutting down, or [`Config::idle_timeout`] passed | 1001 |
//! | peer answered no ping within [`Config::ping_interval`] | dropped; `on_close` sees 1006 |
//! | a message over the [`RateLimitLayer`](layer::RateLimitLayer) limit (default policy) | 1008 |
//! | a [`Hub`] recipient whose queue is full (default [`SlowConsumer`] policy) | 1008 |
//! | a message that is not valid JSON, under `InvalidMessage::Close` | 1007 |
//! | a hook over its [`TimeoutLayer`](layer::TimeoutLayer) deadline | 1011 |

mod config;
pub(crate) mod connection;
mod connections;
mod extensions;
pub mod guard;
mod handler;
pub(crate) mod handshake;
mod hub;
mod io;
pub mod layer;
pub(crate) mod message;
pub(crate) mod queue;
mod router;
mod server;
pub(crate) mod session;
mod timers;
#[cfg(feature = "json")]
mod typed;
pub(crate) mod upgrade;

pub use config::Config;
pub use connection::{serve_connection, serve_connection_with};
pub use connections::{ConnectionGuard, Connections};
pub use extensions::Extensions;
pub use handler::{Handler, HandlerFn, handler_fn};
pub use hub::{Delivery, Hub, SlowConsumer};
pub use layer::{HandlerBuilder, Identity, Layer, Stack};
pub use message::{CloseCode, CloseReason, ClosedBy, Message, Utf8Bytes};
pub use router::{PathParams, Router};
pub use server::{Server, ServerHandle};
pub use session::{ConnectionId, Session, SessionHandle};
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub use typed::{InvalidMessage, Json, JsonLayer, TypedHandler, TypedSession, to_message};
pub use upgrade::{Rejection, Upgrade};

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
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:9001").await?;
//! Server::new(Counter).serve(listener, wsgrpc::shutdown_signal()).await
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
//!   ready ones (tracing, rate limit, timeout) and [`guard`] the upgrade guards (auth,
//!   subprotocol, upgrade rate limit; the rate limits need feature `rate-limit`, on by default).
//!   The origin check is no guard but a [`Config::origin_policy`], on by default.
//! - [`Router`]: dispatch by path on [`matchit`] patterns (axum's), with captures
//!   ([`PathParams`]); unknown paths get `404`.
//! - [`Json`] and [`TypedHandler`] (feature `json`): receive and send `serde` types as JSON.
//! - [`Hub`]: broadcast to all, to a room or to one connection, without copying payloads or
//!   waiting on slow consumers.
//! - [`Upgrade`] and [`Rejection`]: the HTTP request before the `101`, and how to refuse it;
//!   `query_pairs`, `query_param` and (feature `json`) `query_as` decode its query string, on
//!   the [`Session`] too.
//! - [`Server`] and [`Config`]: accept loop, limits, keepalive, graceful shutdown;
//!   [`DeflateConfig`] (permessage-deflate, RFC 7692, on by default) and [`MemoryBudget`] (bytes
//!   all connections may hold in messages still arriving).
//! - [`serve_connection`]: run a handler on a stream upgraded elsewhere (hyper, axum);
//!   [`serve_connection_with`] and [`Connections`] give such connections a graceful shutdown.
//!
//! # How each failure is answered
//!
//! | what happened | close code |
//! |---|---|
//! | text message with invalid UTF-8 | 1007 |
//! | message over [`Config::max_message_size`] (inflated size, for compressed ones) or frame over [`Config::max_frame_size`] | 1009 |
//! | a message that would take the server past its [`Config::memory_budget`] | 1013 |
//! | protocol violation (reserved bits, unknown opcode, unmasked client frame, ...) | 1002 |
//! | a hook returned an error or panicked | 1011 |
//! | server shutting down, or [`Config::idle_timeout`] passed | 1001 |
//! | peer answered no ping within [`Config::ping_interval`] | dropped; `on_close` sees 1006 |
//! | a message over the [`RateLimitLayer`](layer::RateLimitLayer) limit (default policy) | 1008 |
//! | a [`Hub`] recipient whose queue is full (default [`SlowConsumer`] policy) | 1008 |
//! | a message that is not valid JSON, under `InvalidMessage::Close` | 1007 |
//! | a query that does not fit `Session::query_as` (feature `json`), returned from a hook | 1008 |
//! | a hook over its [`TimeoutLayer`](layer::TimeoutLayer) deadline | 1011 |
//!
//! Before the `101`, refusals are HTTP responses (see [`Upgrade::from_request`] for every rule):
//!
//! | what happened | status |
//! |---|---|
//! | `Host` missing, repeated or invalid (RFC 9112 section 3.2); HTTP/1.0; malformed head or key | 400 |
//! | a method other than GET | 405 with `Allow: GET` |
//! | not an upgrade request, or `Sec-WebSocket-Version` other than 13 | 426 |
//! | a page of another origin, under the default [`Config::origin_policy`] | 403 |
//! | over a [`guard::UpgradeRateLimitLayer`] limit | 429 with `Retry-After` |
//! | request head over [`Config::max_request_head_size`] | 431 |
//! | [`Config::max_connections`] reached | 503 with `Retry-After` |

pub(crate) mod accept;
mod config;
mod connections;
pub(crate) mod deflate;
pub(crate) mod engine;
mod extensions;
pub mod guard;
mod handler;
pub(crate) mod handshake;
mod hub;
pub mod layer;
pub(crate) mod message;
mod query;
mod router;
mod server;
pub(crate) mod session;
#[cfg(feature = "json")]
mod typed;
pub(crate) mod upgrade;

pub use config::Config;
pub use connections::{ConnectionGuard, Connections};
pub use deflate::{DeflateConfig, PerMessageDeflate};
pub use engine::budget::MemoryBudget;
pub use engine::{serve_connection, serve_connection_with};
pub use extensions::Extensions;
pub use handler::{Handler, HandlerFn, handler_fn};
pub use hub::{BrokerStats, Crossing, Delivery, Hub, HubBuilder, SlowConsumer};
pub use layer::{HandlerBuilder, Identity, Layer, Stack};
pub use message::{CloseCode, CloseReason, ClosedBy, Message, Utf8Bytes};
pub use router::{PathParams, Router};
pub use server::Server;
pub use session::{ConnectionId, Session, SessionHandle};
#[cfg(feature = "json")]
#[cfg_attr(docsrs, doc(cfg(feature = "json")))]
pub use typed::{InvalidMessage, Json, JsonLayer, TypedHandler, TypedSession, to_message};
pub use upgrade::{Rejection, Upgrade};

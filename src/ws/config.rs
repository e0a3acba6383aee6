//! Limits, timeouts and buffer sizes for WebSocket connections, with documented defaults.
//!
//! Every bound the server enforces is a field here; nothing is hard-coded in the connection code.
//! Defaults follow tungstenite where it has one (message and frame size) and otherwise lean towards
//! safety for a public-facing server: bounded queues, a handshake timeout, keepalive pings.
//!
//! ```
//! use std::time::Duration;
//! use wsgrpc::ws::Config;
//!
//! let config = Config::default()
//!     .max_message_size(1 << 20)
//!     .idle_timeout(Some(Duration::from_secs(300)))
//!     .max_connections(50_000);
//! assert_eq!(config.max_message_size, 1 << 20);
//! ```

use std::time::Duration;

use http::StatusCode;

use crate::origin::{OriginCheck, OriginPolicy};
use crate::ws::{DeflateConfig, MemoryBudget, Rejection, Upgrade};

/// Connection limits and timeouts. Fields are public to read; set them with the builder methods of
/// the same name.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Largest message, after reassembling fragments and, for a compressed message, after
    /// inflating, in bytes; larger ones are answered with close 1009 (inflating stops within
    /// 32 KiB past the limit). Default 64 MiB.
    pub max_message_size: usize,
    /// Largest single frame in bytes; larger ones are answered with close 1009. Default 16 MiB
    /// (tungstenite's default).
    pub max_frame_size: usize,
    /// Largest HTTP upgrade request head (request line and headers) in bytes; larger ones get
    /// `431`. Default 16 KiB.
    pub max_request_head_size: usize,
    /// Time allowed from accepting the TCP connection to sending the `101` response, including
    /// [`Handler::on_upgrade`](crate::ws::Handler::on_upgrade). Default 10 s.
    pub handshake_timeout: Duration,
    /// Close a connection with 1001 after this long without a data message in either direction.
    /// Pings and pongs do not count. Default `None` (quiet connections stay open; keepalive still
    /// detects dead peers).
    pub idle_timeout: Option<Duration>,
    /// Keepalive: when nothing has arrived from the peer for one interval, send a ping; when
    /// nothing (no pong, no message) has arrived one interval after that, the peer is considered
    /// gone and the connection is dropped. A dead peer is detected within two to three intervals.
    /// Default 30 s; `None` disables keepalive.
    pub ping_interval: Option<Duration>,
    /// How long to wait for the peer's close frame after sending ours, and how long to linger
    /// draining input after a protocol error so the peer reads our close frame instead of a reset.
    /// Default 5 s.
    pub close_timeout: Duration,
    /// Drop a connection whose socket accepts no bytes for this long while data waits to be
    /// written, so a peer that stopped reading cannot hold a connection (and a handler waiting on
    /// its queue) forever. Default 30 s.
    pub write_timeout: Duration,
    /// Messages the outgoing queue of each connection holds before senders wait (or
    /// [`try_send`](crate::ws::Session::try_send) fails). Bounds the memory a slow reader can pin to
    /// about this many messages. Default 128.
    pub outgoing_queue: usize,
    /// Connections served at once. Connections beyond it get `503 Service Unavailable` after their
    /// request head is read; at most 128 such refusals are in flight at once, and sockets beyond
    /// that are closed straight away. Default 10,000.
    pub max_connections: usize,
    /// Set `TCP_NODELAY` on accepted sockets. The connection already batches its writes, so Nagle's
    /// algorithm would only add latency. Default `true`.
    pub tcp_nodelay: bool,
    /// On graceful shutdown, how long to wait for connections to finish their close handshakes
    /// before dropping them. Default 10 s.
    pub shutdown_timeout: Duration,
    /// The read buffer a connection reads small frames into, in bytes (at least 256). Small keeps
    /// idle connections cheap (the reason for the default); while a larger frame arrives, reads
    /// take up to 64 KiB at once, and a buffer grown past this size is released as soon as the
    /// peer pauses, so large messages still arrive in few syscalls. Default 2 KiB.
    pub read_buffer_size: usize,
    /// Buffered outgoing bytes above which frames are written to the socket before the batch
    /// ends; also how many a backed-up buffer may hold before pongs wait. Default 128 KiB.
    pub write_buffer_size: usize,
    /// Which web pages may open connections, checked before
    /// [`Handler::on_upgrade`](crate::ws::Handler::on_upgrade) by [`Server`](crate::ws::Server),
    /// [`serve::App`](crate::serve::App) and the axum adapter alike. Refused upgrades get `403`
    /// with a short plain-text body. Default [`OriginPolicy::same_origin`]: a request without
    /// `Origin` (not a browser) passes, a page of the origin the request was sent to passes
    /// (RFC 6454 comparison, see [`origin`](crate::origin)), every other page is refused. Browsers
    /// send cookies with upgrades from any site and WebSocket has no CORS, so without this any
    /// site a user visits could open a connection in the user's name (cross-site WebSocket
    /// hijacking). Opt out with [`allow_any_origin`](Self::allow_any_origin), widen with
    /// [`allow_origins`](Self::allow_origins).
    pub origin_policy: OriginPolicy,
    /// permessage-deflate (RFC 7692): whether offers are accepted (server) or made (client), the
    /// size threshold, window bits and context takeover. Default [`DeflateConfig::default`]:
    /// accepted when offered (feature `deflate`, on by default), messages of 64 bytes or more
    /// compressed, no context takeover either way (so idle connections keep no deflate state).
    pub deflate: DeflateConfig,
    /// The bytes every connection sharing this budget may hold in messages still arriving
    /// (partial frames, fragments, inflated output) beyond 64 KiB each; a message that would pass
    /// it is refused with close 1013 while other connections go on (see [`MemoryBudget`]). Clones
    /// of a `Config` share the budget, so one server's connections draw on one budget. Default
    /// 256 MiB: four messages of the default 64 MiB [`max_message_size`](Self::max_message_size)
    /// at once, a fraction of any server's memory.
    pub memory_budget: MemoryBudget,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_message_size: 64 << 20,
            max_frame_size: 16 << 20,
            max_request_head_size: 16 << 10,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: None,
            ping_interval: Some(Duration::from_secs(30)),
            close_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            outgoing_queue: 128,
            max_connections: 10_000,
            tcp_nodelay: true,
            shutdown_timeout: Duration::from_secs(10),
            read_buffer_size: 2 << 10,
            write_buffer_size: 128 << 10,
            origin_policy: OriginPolicy::same_origin(),
            deflate: DeflateConfig::default(),
            memory_budget: MemoryBudget::new(256 << 20),
        }
    }
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty,)*) => {
        impl Config {
            $(
                $(#[$doc])*
                #[must_use]
                pub fn $name(mut self, $name: $ty) -> Self {
                    self.$name = $name;
                    self
                }
            )*
        }
    };
}

setters! {
    /// Sets [`Config::max_message_size`].
    max_message_size: usize,
    /// Sets [`Config::max_frame_size`].
    max_frame_size: usize,
    /// Sets [`Config::max_request_head_size`].
    max_request_head_size: usize,
    /// Sets [`Config::handshake_timeout`].
    handshake_timeout: Duration,
    /// Sets [`Config::idle_timeout`].
    idle_timeout: Option<Duration>,
    /// Sets [`Config::ping_interval`].
    ping_interval: Option<Duration>,
    /// Sets [`Config::close_timeout`].
    close_timeout: Duration,
    /// Sets [`Config::write_timeout`].
    write_timeout: Duration,
    /// Sets [`Config::outgoing_queue`] (at least 1).
    outgoing_queue: usize,
    /// Sets [`Config::max_connections`].
    max_connections: usize,
    /// Sets [`Config::tcp_nodelay`].
    tcp_nodelay: bool,
    /// Sets [`Config::shutdown_timeout`].
    shutdown_timeout: Duration,
    /// Sets [`Config::read_buffer_size`].
    read_buffer_size: usize,
    /// Sets [`Config::write_buffer_size`].
    write_buffer_size: usize,
    /// Sets [`Config::origin_policy`].
    origin_policy: OriginPolicy,
    /// Sets [`Config::deflate`].
    deflate: DeflateConfig,
    /// Sets [`Config::memory_budget`] (use one [`MemoryBudget`] for several servers to share it).
    memory_budget: MemoryBudget,
}

impl Config {
    /// Lets pages of any origin open connections ([`OriginPolicy::any`]): for endpoints that
    /// rely on no cookies, HTTP auth or client certificates, such as a public feed or a
    /// conformance test server.
    #[must_use]
    pub fn allow_any_origin(self) -> Self {
        self.origin_policy(OriginPolicy::any())
    }

    /// Lets pages of these origins open connections, besides the same origin
    /// ([`OriginPolicy::allow`]): `https://app.example`, `http://localhost:3000`.
    ///
    /// # Panics
    ///
    /// If an entry is not an origin (`scheme://host[:port]`).
    #[must_use]
    pub fn allow_origins<I, S>(self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.origin_policy(OriginPolicy::allow(origins))
    }

    /// Applies [`Config::origin_policy`] to an upgrade request: `Ok` to go on, else the `403`.
    /// The crate's servers call it before `on_upgrade`; call it yourself when you upgrade with
    /// [`Upgrade::from_request`] and [`serve_connection`](crate::ws::serve_connection).
    pub fn check_origin(&self, upgrade: &Upgrade) -> Result<(), Rejection> {
        match self.origin_policy.check(upgrade.request()) {
            OriginCheck::NoOrigin | OriginCheck::SameOrigin | OriginCheck::Allowed => Ok(()),
            OriginCheck::Refused => {
                tracing::debug!(
                    origin = ?upgrade.headers().get(http::header::ORIGIN),
                    host = ?upgrade.headers().get(http::header::HOST),
                    "websocket upgrade from another origin refused"
                );
                Err(Rejection::new(
                    StatusCode::FORBIDDEN,
                    "cross-origin websocket request refused\n",
                ))
            }
        }
    }
}

//! Connection-level settings of the one-port server, each with a documented default.
//!
//! ```
//! use std::time::Duration;
//! use wsgrpc::serve::Config;
//!
//! let config = Config::default().request_head_timeout(Duration::from_secs(5));
//! assert!(config.tcp_nodelay);
//! ```
//!
//! Only what belongs to the shared listener lives here. WebSocket limits (message sizes, keepalive,
//! queue, `max_connections`, `shutdown_timeout`) stay in [`ws::Config`](crate::ws::Config), and the
//! HTTP/2 settings, request limits and `drain_timeout` of gRPC stay in
//! [`grpc::Config`](crate::grpc::Config): the one-port server applies both, exactly as their own
//! servers do.

use std::time::Duration;

/// Settings of the shared listener. Fields are public to read; set them with the builder methods
/// of the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Time a connection gets from accept to its first complete request (of either HTTP version),
    /// and an HTTP/1.1 connection for each request head after that. A client that trickles bytes
    /// (slowloris) or says nothing is disconnected. Default 10 s, as the WebSocket handshake
    /// timeout.
    pub request_head_timeout: Duration,
    /// Time a client gets to finish the TLS handshake (feature `tls`). Default 10 s.
    pub tls_handshake_timeout: Duration,
    /// Set `TCP_NODELAY` on accepted sockets. Default `true`: WebSocket writes are batched already
    /// and gRPC messages are small and latency-bound, so Nagle's algorithm would only add latency.
    /// On one port the socket is shared before anyone knows its protocol, so this replaces the
    /// `tcp_nodelay` of both `ws::Config` and `grpc::Config`.
    pub tcp_nodelay: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            request_head_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            tcp_nodelay: true,
        }
    }
}

impl Config {
    /// Sets [`Config::request_head_timeout`].
    #[must_use]
    pub fn request_head_timeout(mut self, timeout: Duration) -> Self {
        self.request_head_timeout = timeout;
        self
    }

    /// Sets [`Config::tls_handshake_timeout`].
    #[must_use]
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout;
        self
    }

    /// Sets [`Config::tcp_nodelay`].
    #[must_use]
    pub fn tcp_nodelay(mut self, enabled: bool) -> Self {
        self.tcp_nodelay = enabled;
        self
    }
}

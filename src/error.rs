//! The crate's one error type.
//!
//! Every fallible function in `wsgrpc` returns [`Result`]. Variants name what went wrong for the user and
//! carry their source; the protocol mapping lives at the edges, in one function each:
//! [`Error::close_code`] for WebSocket close frames and `From<Error> for tonic::Status` on the gRPC side.
//! A variant that carries a type from an optional dependency, or that only one feature's code can
//! return, exists only with that feature (`WebSocket` with `ws`, `Json` and `Rpc` with `json`,
//! `Reflection` with `grpc`, the connect errors with `client`).

use std::time::Duration;

#[cfg(feature = "ws")]
use tungstenite::protocol::frame::coding::CloseCode;

/// A boxed error of any kind, as handlers return it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `Result` with [`Error`] as the error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `wsgrpc`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket operation failed.
    #[error("i/o error")]
    Io(#[from] std::io::Error),

    #[cfg(feature = "ws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
    /// The WebSocket layer (tungstenite) reported an error: a protocol violation, invalid UTF-8, an
    /// oversize message, or a transport failure underneath.
    #[error("websocket error")]
    WebSocket(#[source] Box<tungstenite::Error>),

    /// The HTTP upgrade request was not a valid WebSocket handshake.
    #[error("invalid websocket handshake: {reason}")]
    Handshake {
        /// What was wrong with the request.
        reason: &'static str,
    },

    /// The peer did not finish the opening handshake in time.
    #[error("handshake timed out after {0:?}")]
    HandshakeTimeout(Duration),

    /// A message was larger than the configured limit.
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Size of the offending message in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },

    /// The connection is closed (or closing); nothing more can be sent on it.
    #[error("connection closed")]
    ConnectionClosed,

    /// The connection's bounded outgoing queue is full (returned by non-waiting sends only).
    #[error("outgoing queue is full")]
    QueueFull,

    /// A handler returned an error; the connection was closed with 1011.
    #[error("handler failed")]
    Handler(#[source] BoxError),

    /// A handler panicked; the connection was closed with 1011 and the server kept serving.
    #[error("handler panicked: {0}")]
    HandlerPanic(String),

    /// The address to bind or connect to could not be used.
    #[error("invalid address `{0}`")]
    InvalidAddress(String),

    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    /// A client URL was not a usable `ws://` or `wss://` URL.
    #[error("invalid websocket url `{0}`")]
    InvalidUrl(String),

    /// A header name or value given to a builder was not valid HTTP.
    #[error("invalid header `{0}`")]
    InvalidHeader(String),

    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    /// The server answered the upgrade request with an HTTP status instead of `101`.
    #[error("server refused the websocket upgrade with {status}")]
    Refused {
        /// The status the server answered with.
        status: http::StatusCode,
    },

    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    /// Connecting (TCP, TLS and the upgrade) took longer than allowed.
    #[error("connecting timed out after {0:?}")]
    ConnectTimeout(Duration),

    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    /// The client is disconnected and its policy is to fail sends rather than buffer them.
    #[error("not connected")]
    NotConnected,

    /// An operation did not complete within its deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),

    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    /// The remote side of a typed call answered with an error.
    #[error("remote call failed")]
    Rpc(#[from] crate::rpc::RpcError),

    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    /// A value could not be encoded to or decoded from JSON.
    #[error("json encoding failed")]
    Json(#[from] serde_json::Error),

    // gRPC
    #[cfg(feature = "grpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    /// The gRPC reflection service could not be built from the embedded file descriptor sets.
    #[error("could not build the grpc reflection service")]
    Reflection(#[from] tonic_reflection::server::Error),

    #[cfg(any(feature = "tls", feature = "client"))]
    #[cfg_attr(docsrs, doc(cfg(any(feature = "tls", feature = "client"))))]
    /// TLS could not be set up: an unusable certificate, key or configuration, or `wss://`
    /// without the `tls` feature.
    #[error("invalid tls configuration")]
    Tls(#[source] BoxError),
}

impl Error {
    /// Wraps any error a handler wants to report; the connection is closed with 1011.
    pub fn handler(error: impl Into<BoxError>) -> Self {
        Error::Handler(error.into())
    }

    #[cfg(feature = "ws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
    /// The WebSocket close code this error is answered with (RFC 6455 section 7.4.1).
    ///
    /// Invalid UTF-8 is 1007, an oversize message or frame 1009, a protocol violation 1002, and
    /// anything raised by the application (handler errors and panics) 1011.
    pub fn close_code(&self) -> CloseCode {
        use tungstenite::error::Error as Ws;
        match self {
            Error::WebSocket(error) => match error.as_ref() {
                Ws::Utf8(_) => CloseCode::Invalid,
                Ws::Capacity(_) | Ws::WriteBufferFull(_) => CloseCode::Size,
                Ws::Protocol(_) => CloseCode::Protocol,
                _ => CloseCode::Error,
            },
            Error::MessageTooLarge { .. } => CloseCode::Size,
            Error::Handshake { .. } => CloseCode::Protocol,
            _ => CloseCode::Error,
        }
    }
}

#[cfg(feature = "ws")]
impl From<tungstenite::Error> for Error {
    fn from(error: tungstenite::Error) -> Self {
        match error {
            tungstenite::Error::Io(io) => Error::Io(io),
            other => Error::WebSocket(Box::new(other)),
        }
    }
}

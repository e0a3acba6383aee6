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
    /// oversize frame, or a transport failure underneath. [`Error::close_code`] says which close
    /// code the peer was sent.
    #[error("websocket error")]
    WebSocket(#[source] Box<tungstenite::Error>),

    /// The server's answer to the client's upgrade request was not a valid WebSocket handshake
    /// (RFC 6455 section 4.1: a `101` without the right `Upgrade`, `Connection` or
    /// `Sec-WebSocket-Accept`, or a subprotocol that was not offered). Returned by
    /// [`Client`](crate::client::Client) connects.
    #[error("invalid websocket handshake: {reason}")]
    Handshake {
        /// What was wrong with the request.
        reason: &'static str,
    },

    /// A message was larger than the configured limit
    /// ([`Config::max_message_size`](crate::ws::Config::max_message_size)): the peer is sent close
    /// 1009 `message too big` and `on_close` sees 1009; this error, with both sizes, is in the
    /// connection's trace event. Handlers may return it for limits of their own (1009 too; gRPC
    /// `RESOURCE_EXHAUSTED`).
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

    #[cfg(feature = "client")]
    #[cfg_attr(docsrs, doc(cfg(feature = "client")))]
    /// A client URL was not a usable `ws://` or `wss://` URL.
    #[error("invalid websocket url `{0}`")]
    InvalidUrl(String),

    /// A header name or value given to the client builder (or an offered subprotocol) was not
    /// valid HTTP; returned by [`ClientBuilder::connect`](crate::client::ClientBuilder::connect).
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

    /// A typed call got no reply within its deadline (the duration here), from
    /// [`RpcClient::call`](crate::rpc::RpcClient::call) and `call_with_timeout`.
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

    /// The upgrade request's query string did not deserialize into the type asked for (a missing
    /// field, a value that does not parse); from
    /// [`Session::query_as`](crate::ws::Session::query_as). Returned from a hook, it closes the
    /// connection with 1008 (policy violation): the peer sent a request the endpoint refuses.
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    #[error("invalid query string")]
    InvalidQuery(#[source] serde_urlencoded::de::Error),

    // gRPC
    #[cfg(feature = "grpc")]
    #[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
    /// A file descriptor set given to the gRPC reflection service
    /// ([`GrpcServer::file_descriptor_set`](crate::grpc::GrpcServer::file_descriptor_set)) does
    /// not decode as an encoded `google.protobuf.FileDescriptorSet`.
    #[error("invalid file descriptor set for grpc reflection")]
    Reflection(#[source] prost::DecodeError),

    #[cfg(feature = "ws")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ws")))]
    /// A [`Hub`](crate::ws::Hub) across nodes could not be set up, from
    /// [`HubBuilder::build`](crate::ws::HubBuilder::build): a broker URL that is malformed or
    /// names a backend whose feature (`redis`, `nats`) is off, or no tokio runtime to run the
    /// broker link on. Never returned once the hub runs: broker outages are counted
    /// ([`Hub::broker_stats`](crate::ws::Hub::broker_stats)), not raised.
    #[error("hub broker: {0}")]
    HubBroker(String),

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
    /// Invalid UTF-8 is 1007, an oversize message or frame 1009, a protocol violation 1002, a
    /// query string the endpoint refuses 1008, and anything raised by the application (handler
    /// errors and panics) 1011.
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
            #[cfg(feature = "json")]
            Error::InvalidQuery(_) => CloseCode::Policy,
            _ => CloseCode::Error,
        }
    }
}

#[cfg(feature = "ws")]
impl From<tungstenite::Error> for Error {
    fn from(error: tungstenite::Error) -> Self {
        use tungstenite::error::CapacityError;
        match error {
            tungstenite::Error::Io(io) => Error::Io(io),
            // The one limit callers act on gets its own variant, with both sizes.
            tungstenite::Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                Error::MessageTooLarge {
                    size,
                    limit: max_size,
                }
            }
            other => Error::WebSocket(Box::new(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversize_message_keeps_both_sizes_and_closes_with_1009() {
        let error = Error::from(tungstenite::Error::Capacity(
            tungstenite::error::CapacityError::MessageTooLong {
                size: 70_000,
                max_size: 65_536,
            },
        ));
        assert!(matches!(
            error,
            Error::MessageTooLarge {
                size: 70_000,
                limit: 65_536
            }
        ));
        assert_eq!(error.close_code(), CloseCode::Size);
        assert_eq!(
            error.to_string(),
            "message of 70000 bytes exceeds the limit of 65536 bytes"
        );
        // Other capacity errors stay tungstenite's, still 1009.
        let headers = Error::from(tungstenite::Error::Capacity(
            tungstenite::error::CapacityError::TooManyHeaders,
        ));
        assert!(matches!(headers, Error::WebSocket(_)));
        assert_eq!(headers.close_code(), CloseCode::Size);
    }
}

//! Server settings, each with a documented default.
//!
//! One plain struct holds every knob so the defaults can be read in one place (and in the README's
//! table). The request-level settings (message sizes, timeout, concurrency, compression) shape the
//! assembled services and [`GrpcLayer`](super::GrpcLayer); the connection-level ones (HTTP/2 settings,
//! keepalive, drain deadline) are read by whichever accept loop serves them: [`GrpcServer::serve`] here,
//! or a shared one-port server elsewhere.
//!
//! [`GrpcServer::serve`]: super::GrpcServer::serve

use std::time::Duration;

use tonic::codec::CompressionEncoding;

/// 4 MiB: grpc-go's default limit for a received message, so clients see the same behaviour from us.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 4 * 1024 * 1024;

/// Settings for [`GrpcServer`](super::GrpcServer).
///
/// The message size limits and compression encodings are per service in tonic: the server applies
/// them to the services it makes (health, reflection, the Greeter of `GrpcServer::new`), and
/// [`configure_service!`](crate::configure_service) applies them to yours.
///
/// Build it from [`Config::default`] with the chained setters; every field is also public for reading.
///
/// ```
/// use std::time::Duration;
/// use wsgrpc::grpc::Config;
///
/// let config = Config::default()
///     .timeout(Duration::from_secs(5))
///     .concurrency_limit(256)
///     .load_shed(true);
/// assert_eq!(config.max_decoding_message_size, 4 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Config {
    /// Largest request message accepted, after decompression. Default 4 MiB (grpc-go's default).
    ///
    /// A larger message is refused by tonic's codec with `OUT_OF_RANGE` (a compressed message that
    /// inflates past the limit gets `RESOURCE_EXHAUSTED`); the connection and the server stay up.
    pub max_decoding_message_size: usize,
    /// Largest reply message sent. Default 4 MiB: standard clients refuse larger replies by default,
    /// so sending one would only waste bandwidth. A larger reply fails the call with `OUT_OF_RANGE`.
    pub max_encoding_message_size: usize,
    /// Server-side deadline for every call. Default `None`.
    ///
    /// The client's `grpc-timeout` header is honoured either way; when both are set the shorter wins.
    /// An expired call is answered with `DEADLINE_EXCEEDED` and its handler is dropped.
    pub timeout: Option<Duration>,
    /// Most calls in flight at once across all connections. Default `None` (unlimited).
    ///
    /// A call holds its slot until its reply stream ends, so streaming calls count too.
    pub concurrency_limit: Option<usize>,
    /// With a [`concurrency_limit`](Self::concurrency_limit): refuse a call at once with
    /// `RESOURCE_EXHAUSTED` instead of queueing it until a slot frees. Default `false`.
    pub load_shed: bool,
    /// HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS` per connection. Default `Some(200)` (hyper's default).
    pub max_concurrent_streams: Option<u32>,
    /// Interval of HTTP/2 PING frames on an idle connection, to find peers that vanished. Default
    /// `None`, as tonic's `Server`: hyper's keepalive bookkeeping costs about 2 µs of server CPU per
    /// call on a connection with one call at a time (measured by `cargo bench --bench grpc`, ~6%).
    /// Set it (grpc-go uses two hours) when idle connections can be cut off without a FIN, e.g.
    /// behind NAT.
    pub http2_keepalive_interval: Option<Duration>,
    /// How long to wait for a keepalive PING's acknowledgement before closing the connection.
    /// Default 20 seconds (grpc-go's default).
    pub http2_keepalive_timeout: Duration,
    /// HTTP/2 initial stream flow-control window. Default `None` (hyper's 1 MiB).
    pub initial_stream_window_size: Option<u32>,
    /// HTTP/2 initial connection flow-control window. Default `None` (hyper's 1 MiB).
    pub initial_connection_window_size: Option<u32>,
    /// Set `TCP_NODELAY` on accepted sockets. Default `true`: gRPC messages are small and latency-bound.
    pub tcp_nodelay: bool,
    /// Request encodings the services decompress. Default gzip and zstd.
    ///
    /// Decompression is bounded by [`max_decoding_message_size`](Self::max_decoding_message_size), so
    /// accepting compressed requests does not open a decompression-bomb hole.
    pub accept_compressed: Vec<CompressionEncoding>,
    /// Reply encodings the services may use when the client advertises them in `grpc-accept-encoding`.
    /// Default none: compressing a short greeting costs more CPU than it saves bandwidth.
    pub send_compressed: Vec<CompressionEncoding>,
    /// After the shutdown signal, how long in-flight calls may take to finish before their connections
    /// are closed. Default 20 seconds, under Kubernetes' default 30 second termination grace period.
    pub drain_timeout: Duration,
    /// Time a client gets to finish the TLS handshake. Default 10 seconds.
    pub tls_handshake_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_decoding_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_encoding_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            timeout: None,
            concurrency_limit: None,
            load_shed: false,
            max_concurrent_streams: Some(200),
            http2_keepalive_interval: None,
            http2_keepalive_timeout: Duration::from_secs(20),
            initial_stream_window_size: None,
            initial_connection_window_size: None,
            tcp_nodelay: true,
            accept_compressed: vec![CompressionEncoding::Gzip, CompressionEncoding::Zstd],
            send_compressed: Vec::new(),
            drain_timeout: Duration::from_secs(20),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl Config {
    /// Sets [`max_decoding_message_size`](Self::max_decoding_message_size).
    pub fn max_decoding_message_size(mut self, bytes: usize) -> Self {
        self.max_decoding_message_size = bytes;
        self
    }

    /// Sets [`max_encoding_message_size`](Self::max_encoding_message_size).
    pub fn max_encoding_message_size(mut self, bytes: usize) -> Self {
        self.max_encoding_message_size = bytes;
        self
    }

    /// Sets the server-side [`timeout`](Self::timeout) for every call.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the [`concurrency_limit`](Self::concurrency_limit).
    pub fn concurrency_limit(mut self, calls: usize) -> Self {
        self.concurrency_limit = Some(calls);
        self
    }

    /// Sets [`load_shed`](Self::load_shed).
    pub fn load_shed(mut self, enabled: bool) -> Self {
        self.load_shed = enabled;
        self
    }

    /// Sets [`max_concurrent_streams`](Self::max_concurrent_streams).
    pub fn max_concurrent_streams(mut self, streams: Option<u32>) -> Self {
        self.max_concurrent_streams = streams;
        self
    }

    /// Sets [`http2_keepalive_interval`](Self::http2_keepalive_interval).
    pub fn http2_keepalive_interval(mut self, interval: Option<Duration>) -> Self {
        self.http2_keepalive_interval = interval;
        self
    }

    /// Sets [`http2_keepalive_timeout`](Self::http2_keepalive_timeout).
    pub fn http2_keepalive_timeout(mut self, timeout: Duration) -> Self {
        self.http2_keepalive_timeout = timeout;
        self
    }

    /// Sets [`initial_stream_window_size`](Self::initial_stream_window_size).
    pub fn initial_stream_window_size(mut self, bytes: Option<u32>) -> Self {
        self.initial_stream_window_size = bytes;
        self
    }

    /// Sets [`initial_connection_window_size`](Self::initial_connection_window_size).
    pub fn initial_connection_window_size(mut self, bytes: Option<u32>) -> Self {
        self.initial_connection_window_size = bytes;
        self
    }

    /// Sets [`tcp_nodelay`](Self::tcp_nodelay).
    pub fn tcp_nodelay(mut self, enabled: bool) -> Self {
        self.tcp_nodelay = enabled;
        self
    }

    /// Sets [`accept_compressed`](Self::accept_compressed); an empty list refuses compressed requests
    /// with `UNIMPLEMENTED`.
    pub fn accept_compressed(
        mut self,
        encodings: impl IntoIterator<Item = CompressionEncoding>,
    ) -> Self {
        self.accept_compressed = encodings.into_iter().collect();
        self
    }

    /// Sets [`send_compressed`](Self::send_compressed).
    pub fn send_compressed(
        mut self,
        encodings: impl IntoIterator<Item = CompressionEncoding>,
    ) -> Self {
        self.send_compressed = encodings.into_iter().collect();
        self
    }

    /// Sets [`drain_timeout`](Self::drain_timeout).
    pub fn drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Sets [`tls_handshake_timeout`](Self::tls_handshake_timeout).
    pub fn tls_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.tls_handshake_timeout = timeout;
        self
    }
}

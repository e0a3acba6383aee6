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
    /// Idle time before the kernel sends the first TCP keepalive probe on an accepted socket
    /// (`SO_KEEPALIVE` + `TCP_KEEPIDLE`). Default `None`: no TCP keepalive, as tonic's `Server`
    /// (grpc-go inherits Go's 15 seconds from `net.Listen`).
    ///
    /// Finds peers that vanished without a FIN at the TCP level, with no cost in user space; the
    /// client sees nothing unless it stopped answering, in which case the socket is reset. Only TCP
    /// listeners have it (a Unix socket ignores it).
    pub tcp_keepalive: Option<Duration>,
    /// Time between TCP keepalive probes after the first (`TCP_KEEPINTVL`). Default `None`: the
    /// kernel's (Linux: 75 seconds). Applies only with [`tcp_keepalive`](Self::tcp_keepalive).
    pub tcp_keepalive_interval: Option<Duration>,
    /// Unanswered TCP keepalive probes before the kernel drops the connection (`TCP_KEEPCNT`).
    /// Default `None`: the kernel's (Linux: 9). Applies only with
    /// [`tcp_keepalive`](Self::tcp_keepalive).
    pub tcp_keepalive_retries: Option<u32>,
    /// How long a connection may live before the server asks the client to move on. Default `None`
    /// (forever, grpc-go's `MaxConnectionAge` default).
    ///
    /// Each connection's age is jittered by +-10% as grpc-go does, so clients that connected
    /// together do not all reconnect together. When it passes, the server sends HTTP/2 `GOAWAY`
    /// (`NO_ERROR`, RFC 9113 section 6.8): the client opens a new connection for its next calls while
    /// the calls in flight finish within
    /// [`max_connection_age_grace`](Self::max_connection_age_grace). Used behind L4 load
    /// balancers, so new server instances get their share of long-lived connections. Applied by
    /// [`GrpcServer::serve`](super::GrpcServer::serve); the one-port `App` does not age its
    /// connections.
    pub max_connection_age: Option<Duration>,
    /// After [`max_connection_age`](Self::max_connection_age), how long the calls in flight get to
    /// finish before the connection is closed under them (their clients then see `UNAVAILABLE`).
    /// Default `None`: as long as they take (grpc-go's `MaxConnectionAgeGrace` default).
    pub max_connection_age_grace: Option<Duration>,
    /// HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`: the largest request header block accepted, in bytes
    /// (RFC 9113 section 6.5.2: the sum of each field's name, value and 32). Default `None`: hyper's
    /// 16 KiB (grpc-go allows 16 MiB).
    ///
    /// A request over the limit is refused before it reaches a service: the server answers HTTP
    /// status 431 without `grpc-status`, which gRPC clients map to `UNKNOWN` (the gRPC spec's
    /// HTTP-to-gRPC status mapping; tonic says "mapped from HTTP status code 431").
    pub http2_max_header_list_size: Option<u32>,
    /// HTTP/2 `SETTINGS_MAX_FRAME_SIZE`: the largest frame payload the client may send, in bytes,
    /// between 16 KiB and 16 MiB - 1 (RFC 9113 section 6.5.2). Default `None`: 16 KiB, the
    /// protocol's and hyper's default (grpc-go also uses 16 KiB).
    pub max_frame_size: Option<u32>,
    /// Streams a client may open and reset before the server accepted them, before the connection
    /// is closed with `GOAWAY ENHANCE_YOUR_CALM`: the defence against "rapid reset" floods
    /// (CVE-2023-44487). Default `None`: hyper's 20.
    pub max_pending_accept_reset_streams: Option<usize>,
    /// Size the HTTP/2 flow-control windows from the measured bandwidth-delay product (BDP pings)
    /// instead of the fixed [`initial_stream_window_size`](Self::initial_stream_window_size) and
    /// [`initial_connection_window_size`](Self::initial_connection_window_size), which it then
    /// overrides. Default `false` (tonic's default; grpc-go turns BDP estimation on unless a window
    /// size is set). Helps large uploads over long fat links; costs a PING per window of data.
    pub http2_adaptive_window: bool,
    /// Also serve HTTP/1.1 on the gRPC port. Default `false` (tonic's default), and then an HTTP/1.1
    /// request is not an HTTP/2 connection preface: hyper closes the connection without an HTTP
    /// answer (the client sees the connection end, possibly after an HTTP/2 `GOAWAY
    /// PROTOCOL_ERROR` frame it cannot read). With `true`, hyper-util's auto server reads the preface
    /// and serves HTTP/1.1 requests with the same services, which only makes sense for protocols
    /// that work over HTTP/1.1, such as gRPC-Web behind its layer: gRPC itself needs HTTP/2. The
    /// one-port `App` always serves HTTP/1.1 and ignores this.
    pub accept_http1: bool,
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
            tcp_keepalive: None,
            tcp_keepalive_interval: None,
            tcp_keepalive_retries: None,
            max_connection_age: None,
            max_connection_age_grace: None,
            http2_max_header_list_size: None,
            max_frame_size: None,
            max_pending_accept_reset_streams: None,
            http2_adaptive_window: false,
            accept_http1: false,
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

    /// Sets [`tcp_keepalive`](Self::tcp_keepalive): the idle time before the first probe.
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.tcp_keepalive = idle;
        self
    }

    /// Sets [`tcp_keepalive_interval`](Self::tcp_keepalive_interval).
    pub fn tcp_keepalive_interval(mut self, interval: Option<Duration>) -> Self {
        self.tcp_keepalive_interval = interval;
        self
    }

    /// Sets [`tcp_keepalive_retries`](Self::tcp_keepalive_retries).
    pub fn tcp_keepalive_retries(mut self, retries: Option<u32>) -> Self {
        self.tcp_keepalive_retries = retries;
        self
    }

    /// Sets [`max_connection_age`](Self::max_connection_age) (jittered by +-10% per connection).
    pub fn max_connection_age(mut self, age: Duration) -> Self {
        self.max_connection_age = Some(age);
        self
    }

    /// Sets [`max_connection_age_grace`](Self::max_connection_age_grace).
    pub fn max_connection_age_grace(mut self, grace: Duration) -> Self {
        self.max_connection_age_grace = Some(grace);
        self
    }

    /// Sets [`http2_max_header_list_size`](Self::http2_max_header_list_size), in bytes.
    pub fn http2_max_header_list_size(mut self, bytes: Option<u32>) -> Self {
        self.http2_max_header_list_size = bytes;
        self
    }

    /// Sets [`max_frame_size`](Self::max_frame_size), in bytes.
    pub fn max_frame_size(mut self, bytes: Option<u32>) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`max_pending_accept_reset_streams`](Self::max_pending_accept_reset_streams).
    pub fn max_pending_accept_reset_streams(mut self, streams: Option<usize>) -> Self {
        self.max_pending_accept_reset_streams = streams;
        self
    }

    /// Sets [`http2_adaptive_window`](Self::http2_adaptive_window).
    pub fn http2_adaptive_window(mut self, enabled: bool) -> Self {
        self.http2_adaptive_window = enabled;
        self
    }

    /// Sets [`accept_http1`](Self::accept_http1).
    pub fn accept_http1(mut self, enabled: bool) -> Self {
        self.accept_http1 = enabled;
        self
    }

    /// The TCP keepalive settings for the accept loop, when [`tcp_keepalive`](Self::tcp_keepalive)
    /// is set.
    pub(crate) fn tcp_keepalive_settings(&self) -> Option<crate::net::TcpKeepalive> {
        self.tcp_keepalive.map(|idle| crate::net::TcpKeepalive {
            idle,
            interval: self.tcp_keepalive_interval,
            retries: self.tcp_keepalive_retries,
        })
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

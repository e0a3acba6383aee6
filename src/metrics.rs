//! Metrics an operator can scrape: WebSocket connections, messages, closes and refusals, the Hub's
//! deliveries and drops, gRPC calls by method and status, and one-port requests by protocol, all
//! recorded through the [`metrics`](https://docs.rs/metrics/0.24) facade (feature `metrics`).
//!
//! The crate only records; the application picks the exporter by installing a recorder, e.g.
//! `metrics-exporter-prometheus`, whose text the `app` example serves at `/metrics` on its one port:
//!
//! ```no_run
//! # #[cfg(feature = "serve")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use wsgrpc::serve::Assets;
//!
//! let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
//!     .with_recommended_naming(true)
//!     .set_buckets(wsgrpc::metrics::DURATION_BUCKETS)?
//!     .install_recorder()?;
//! wsgrpc::metrics::describe();
//! let assets = Assets::new().generated("/metrics", "text/plain; version=0.0.4", move || {
//!     handle.render().into()
//! });
//! # let _ = assets;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "serve"))]
//! # fn main() {}
//! ```
//!
//! **Install the recorder before serving.** The figures recorded on every message or call
//! (messages and bytes in and out, Hub deliveries, gRPC calls) are resolved once per process, on
//! first use, so that recording costs an atomic add rather than a registry lookup; a recorder
//! installed after the first of them never sees them. Connections, closes and refusals are
//! looked up when they happen.
//!
//! # Names
//!
//! Names are OpenTelemetry-style (dot-separated, unit in the metadata, not in the name); the
//! Prometheus exporter turns dots into underscores and, with `set_enable_unit_suffix(true)`,
//! appends the unit (`rpc.server.duration` becomes `rpc_server_duration_seconds`). Label names
//! are turned the same way (`rpc.grpc.status_code` becomes `rpc_grpc_status_code`).
//!
//! - gRPC follows the OpenTelemetry RPC semantic conventions as most instrumentations still emit
//!   them (v1.37 and before: `rpc.server.duration` with `rpc.system`, `rpc.service`,
//!   `rpc.method`, `rpc.grpc.status_code`), but in seconds, the unit the newer conventions and
//!   Prometheus use. Calls in flight have no RPC convention; they mirror HTTP's
//!   `http.server.active_requests`.
//! - WebSocket has no convention at all: the names here use a `websocket.` prefix, the
//!   `network.io.direction` attribute of OpenTelemetry's network metrics (`receive`, `transmit`)
//!   and the `http.response.status_code` attribute of its HTTP conventions.
//! - One-port requests are this crate's own: `wsgrpc.app.requests`.
//!
//! Every label has a bounded set of values (a remote peer cannot grow the recorder's memory): close
//! codes are the ones RFC 6455 section 7.4 lets on the wire, statuses are HTTP or gRPC codes, and
//! gRPC method names are kept for at most [`MAX_RPC_METHODS`] distinct methods (beyond that, and
//! for calls answered `UNIMPLEMENTED`, they read `_OTHER`, as OpenTelemetry does for unknown HTTP
//! methods).
//!
//! Without the `metrics` feature the recording functions are empty and inline to nothing, so the
//! crate records at its call sites without `#[cfg]`s and costs nothing when nobody asked.

// Without the feature this module is private and only its empty recording functions are used.
#![cfg_attr(not(feature = "metrics"), allow(dead_code, unreachable_pub))]

#[cfg(all(feature = "metrics", any(feature = "ws", feature = "grpc")))]
use std::sync::LazyLock;

#[cfg(all(feature = "metrics", any(feature = "ws", feature = "grpc")))]
use metrics::gauge;
#[cfg(all(feature = "metrics", feature = "grpc"))]
use metrics::histogram;
#[cfg(all(feature = "metrics", feature = "ws"))]
use metrics::{Counter, counter};
#[cfg(feature = "metrics")]
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

// --- WebSocket ---

/// Gauge: WebSocket connections open on the server side right now (from the `101` until the
/// connection's task ends). No labels.
pub const WS_ACTIVE_CONNECTIONS: &str = "websocket.server.active_connections";
/// Counter: WebSocket connections opened on the server side (after the `101`). No labels.
pub const WS_CONNECTIONS: &str = "websocket.server.connections";
/// Counter: WebSocket messages (text and binary; not control frames) received and sent, by
/// `network.io.direction` (`receive`, `transmit`). Counted by the connection engine, on the client
/// side too when the `client` feature dials from the same process.
pub const WS_MESSAGES: &str = "websocket.server.messages";
/// Counter, bytes: payload bytes of those messages, by `network.io.direction` (`receive`,
/// `transmit`). Frame headers, masking and compression are not counted.
pub const WS_IO: &str = "websocket.server.io";
/// Counter: WebSocket connections ended, by `websocket.close.code` (the RFC 6455 section 7.4 code
/// as a number; 1006 when the transport went away without a close frame, 1005 when the peer's
/// frame had no code) and `websocket.close.initiator` (`local` or `peer`, see
/// [`ClosedBy`](crate::ws::ClosedBy)).
pub const WS_CLOSES: &str = "websocket.server.closes";
/// Counter: upgrade requests refused with an HTTP response instead of `101`, by
/// `http.response.status_code` (400 malformed, 403 origin or guard, 426 wrong version, 503 at
/// capacity or shutting down, or whatever a handler's `on_upgrade` answered).
pub const WS_HANDSHAKE_REFUSALS: &str = "websocket.server.handshake_refusals";
/// Counter: messages refused because a connection's outgoing queue was full
/// ([`Error::QueueFull`](crate::Error::QueueFull) from `try_send`, the Hub's sends included).
pub const WS_QUEUE_FULL: &str = "websocket.server.queue_full";
/// Counter: messages the Hub queued for a member (one per member per broadcast).
pub const HUB_DELIVERIES: &str = "websocket.hub.deliveries";
/// Counter: messages the Hub skipped for a member whose queue was full under
/// [`SlowConsumer::Lag`](crate::ws::SlowConsumer::Lag).
pub const HUB_LAGGED: &str = "websocket.hub.lagged";
/// Counter: members the Hub closed and removed as slow consumers under
/// [`SlowConsumer::Close`](crate::ws::SlowConsumer::Close).
pub const HUB_SLOW_CONSUMERS: &str = "websocket.hub.slow_consumers";

// --- gRPC ---

/// Histogram, seconds: gRPC calls from the request's arrival at the metrics layer to the call's
/// status (response headers for a trailers-only answer, else the trailers at the end of the
/// body), by `rpc.system` (`grpc`), `rpc.service` (`helloworld.Greeter`), `rpc.method`
/// (`SayHello`) and `rpc.grpc.status_code` (the number, `0` OK to `16` UNAUTHENTICATED). Its
/// count is the number of calls by method and status. A call whose response is dropped before its
/// status (the client cancelled, the connection closed) counts as `1` CANCELLED.
pub const RPC_SERVER_DURATION: &str = "rpc.server.duration";
/// Gauge: gRPC calls in flight (from arrival until their status is known, streaming bodies
/// included), by `rpc.system` (`grpc`).
pub const RPC_SERVER_ACTIVE_REQUESTS: &str = "rpc.server.active_requests";

// --- one port ---

/// Counter: requests the one-port [`App`](crate::serve::App) routed, by `protocol`
/// (`websocket`, `grpc`, `grpc-web`, `http`).
pub const APP_REQUESTS: &str = "wsgrpc.app.requests";

/// Distinct gRPC methods labelled by name; later ones read `_OTHER`. 256: far more than a
/// server's methods, few enough that random paths sent by a client cannot grow memory.
pub const MAX_RPC_METHODS: usize = 256;

/// Histogram bucket bounds in seconds for [`RPC_SERVER_DURATION`], OpenTelemetry's advice for
/// RPC and HTTP durations (5 ms to 10 s). The Prometheus exporter renders summaries unless told
/// buckets (`PrometheusBuilder::set_buckets`).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Registers a description and unit for every metric above with the installed recorder, so the
/// exporter can print `# HELP` lines and unit suffixes. Call it once, after installing the
/// recorder; recording works without it.
#[cfg(feature = "metrics")]
pub fn describe() {
    describe_gauge!(WS_ACTIVE_CONNECTIONS, "WebSocket connections open now");
    describe_counter!(WS_CONNECTIONS, "WebSocket connections opened");
    describe_counter!(WS_MESSAGES, "WebSocket messages by direction");
    describe_counter!(WS_IO, Unit::Bytes, "WebSocket payload bytes by direction");
    describe_counter!(WS_CLOSES, "WebSocket connections ended by close code");
    describe_counter!(
        WS_HANDSHAKE_REFUSALS,
        "WebSocket upgrades refused by HTTP status"
    );
    describe_counter!(WS_QUEUE_FULL, "messages refused by a full outgoing queue");
    describe_counter!(HUB_DELIVERIES, "messages the hub queued for members");
    describe_counter!(HUB_LAGGED, "messages the hub skipped for lagging members");
    describe_counter!(
        HUB_SLOW_CONSUMERS,
        "members the hub closed as slow consumers"
    );
    describe_histogram!(
        RPC_SERVER_DURATION,
        Unit::Seconds,
        "gRPC call duration by service, method and status"
    );
    describe_gauge!(RPC_SERVER_ACTIVE_REQUESTS, "gRPC calls in flight");
    describe_counter!(APP_REQUESTS, "one-port requests by protocol");
}

// --- recording (crate-internal; each is one line at its call site) ---

/// The per-message counters, resolved once (see the module docs).
#[cfg(all(feature = "metrics", feature = "ws"))]
struct MessageCounters {
    received: Counter,
    received_bytes: Counter,
    sent: Counter,
    sent_bytes: Counter,
}

#[cfg(all(feature = "metrics", feature = "ws"))]
static MESSAGES: LazyLock<MessageCounters> = LazyLock::new(|| MessageCounters {
    received: counter!(WS_MESSAGES, "network.io.direction" => "receive"),
    received_bytes: counter!(WS_IO, "network.io.direction" => "receive"),
    sent: counter!(WS_MESSAGES, "network.io.direction" => "transmit"),
    sent_bytes: counter!(WS_IO, "network.io.direction" => "transmit"),
});

/// A text or binary message of `bytes` payload bytes arrived.
#[cfg(feature = "ws")]
#[inline]
pub(crate) fn ws_message_received(bytes: usize) {
    #[cfg(feature = "metrics")]
    {
        MESSAGES.received.increment(1);
        MESSAGES.received_bytes.increment(bytes as u64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = bytes;
}

/// A message of `bytes` payload bytes was taken from the outgoing queue to be written.
#[cfg(feature = "ws")]
#[inline]
pub(crate) fn ws_message_sent(bytes: usize) {
    #[cfg(feature = "metrics")]
    {
        MESSAGES.sent.increment(1);
        MESSAGES.sent_bytes.increment(bytes as u64);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = bytes;
}

/// Keeps a server connection in [`WS_ACTIVE_CONNECTIONS`] while it lives; a zero-sized value.
#[cfg(feature = "ws")]
#[must_use = "the connection counts as open while this lives"]
pub(crate) struct OpenConnection(());

#[cfg(feature = "ws")]
impl Drop for OpenConnection {
    fn drop(&mut self) {
        #[cfg(feature = "metrics")]
        gauge!(WS_ACTIVE_CONNECTIONS).decrement(1.0);
    }
}

/// A server connection opened; it counts as open until the value returned is dropped (also when
/// its task is aborted).
#[cfg(feature = "ws")]
#[inline]
pub(crate) fn ws_connection_opened() -> OpenConnection {
    #[cfg(feature = "metrics")]
    {
        counter!(WS_CONNECTIONS).increment(1);
        gauge!(WS_ACTIVE_CONNECTIONS).increment(1.0);
    }
    OpenConnection(())
}

/// A server connection ended for `reason`; returns it, so the call wraps the expression that
/// produced it.
#[cfg(feature = "ws")]
#[inline]
pub(crate) fn ws_connection_closed(reason: crate::ws::CloseReason) -> crate::ws::CloseReason {
    #[cfg(feature = "metrics")]
    {
        let initiator = match reason.closed_by {
            crate::ws::ClosedBy::Local => "local",
            crate::ws::ClosedBy::Peer => "peer",
        };
        counter!(
            WS_CLOSES,
            "websocket.close.code" => reason.code_number().to_string(),
            "websocket.close.initiator" => initiator,
        )
        .increment(1);
    }
    reason
}

/// An upgrade was refused with `status`.
#[cfg(feature = "ws")]
#[inline]
pub(crate) fn ws_handshake_refused(status: http::StatusCode) {
    #[cfg(feature = "metrics")]
    counter!(WS_HANDSHAKE_REFUSALS, "http.response.status_code" => status.as_str().to_owned())
        .increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = status;
}

/// A `try_send` found the outgoing queue full.
#[cfg(feature = "ws")]
#[inline]
pub(crate) fn ws_queue_full() {
    #[cfg(feature = "metrics")]
    counter!(WS_QUEUE_FULL).increment(1);
}

/// One Hub send reached `delivered` members, skipped `lagged` and closed `slow` as slow consumers.
#[cfg(feature = "ws")]
#[inline]
pub(crate) fn hub_delivery(delivered: usize, lagged: usize, slow: usize) {
    #[cfg(feature = "metrics")]
    {
        static HUB: LazyLock<[Counter; 3]> = LazyLock::new(|| {
            [
                counter!(HUB_DELIVERIES),
                counter!(HUB_LAGGED),
                counter!(HUB_SLOW_CONSUMERS),
            ]
        });
        // Once per broadcast, not per member: a broadcast to a thousand members is one add.
        let [deliveries, lagged_total, slow_total] = &*HUB;
        deliveries.increment(delivered as u64);
        if lagged > 0 {
            lagged_total.increment(lagged as u64);
        }
        if slow > 0 {
            slow_total.increment(slow as u64);
        }
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (delivered, lagged, slow);
}

/// The one-port App routed a request to `protocol` (`websocket`, `grpc`, `grpc-web`, `http`).
#[cfg(feature = "serve")]
#[inline]
pub(crate) fn app_request(protocol: &'static str) {
    #[cfg(feature = "metrics")]
    counter!(APP_REQUESTS, "protocol" => protocol).increment(1);
    #[cfg(not(feature = "metrics"))]
    let _ = protocol;
}

// --- gRPC calls (used by `grpc::layer::GrpcMetrics`) ---

/// One gRPC call being measured: in [`RPC_SERVER_ACTIVE_REQUESTS`] from creation, recorded in
/// [`RPC_SERVER_DURATION`] once with its status; dropped unrecorded, it counts as CANCELLED.
#[cfg(all(feature = "metrics", feature = "grpc"))]
#[derive(Debug)]
pub(crate) struct RpcCall {
    start: std::time::Instant,
    path: http::uri::PathAndQuery,
    recorded: bool,
}

/// The calls-in-flight gauge, resolved once like the message counters.
#[cfg(all(feature = "metrics", feature = "grpc"))]
static RPC_ACTIVE: LazyLock<metrics::Gauge> =
    LazyLock::new(|| gauge!(RPC_SERVER_ACTIVE_REQUESTS, "rpc.system" => "grpc"));

#[cfg(all(feature = "metrics", feature = "grpc"))]
impl RpcCall {
    /// A call to `uri`'s path (`/package.Service/Method`) starting now.
    pub(crate) fn start(uri: &http::Uri) -> Self {
        RPC_ACTIVE.increment(1.0);
        RpcCall {
            start: std::time::Instant::now(),
            path: uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
            recorded: false,
        }
    }

    /// The call's status is `code` (the `grpc-status` number); records it once.
    pub(crate) fn finish(&mut self, code: u16) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        RPC_ACTIVE.decrement(1.0);
        duration_histogram(self.path.path(), code).record(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(all(feature = "metrics", feature = "grpc"))]
impl Drop for RpcCall {
    fn drop(&mut self) {
        // gRPC status codes: 1 CANCELLED.
        self.finish(1);
    }
}

/// gRPC status code 2, UNKNOWN: what a `grpc-status` outside 0..=16 means to a client.
#[cfg(all(feature = "metrics", feature = "grpc"))]
const UNKNOWN: u16 = 2;

/// gRPC status code 12, UNIMPLEMENTED: the method does not exist here.
#[cfg(all(feature = "metrics", feature = "grpc"))]
const UNIMPLEMENTED: u16 = 12;

/// The label for a method not labelled by name.
#[cfg(all(feature = "metrics", feature = "grpc"))]
const OTHER: &str = "_OTHER";

/// The histograms of [`RPC_SERVER_DURATION`] by path and status code (0 to 16), resolved once
/// each: a call then records without a registry lookup or a label allocation. The key `""`
/// holds the `_OTHER` series.
#[cfg(all(feature = "metrics", feature = "grpc"))]
type DurationTable = std::collections::HashMap<String, [Option<metrics::Histogram>; 17]>;

/// The [`RPC_SERVER_DURATION`] histogram for a call to `path` that ended with `code`: labelled
/// with the service and method of the path (gRPC over HTTP/2: `/{service}/{method}`), or
/// `_OTHER` for a malformed path, an unknown method (UNIMPLEMENTED) or one past the first
/// [`MAX_RPC_METHODS`].
#[cfg(all(feature = "metrics", feature = "grpc"))]
fn duration_histogram(path: &str, code: u16) -> metrics::Histogram {
    use std::sync::{Mutex, PoisonError};
    static TABLE: LazyLock<Mutex<DurationTable>> = LazyLock::new(Mutex::default);

    let mut table = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
    let (key, code) = table_slot(&table, path, code);
    if !table.contains_key(key) {
        table.insert(key.to_owned(), Default::default());
    }
    let slots = table.get_mut(key).expect("inserted above");
    slots[usize::from(code)]
        .get_or_insert_with(|| {
            let (service, method) = split_path(key).unwrap_or((OTHER, OTHER));
            histogram!(
                RPC_SERVER_DURATION,
                "rpc.system" => "grpc",
                "rpc.service" => service.to_owned(),
                "rpc.method" => method.to_owned(),
                "rpc.grpc.status_code" => code.to_string(),
            )
        })
        .clone()
}

/// Where in `table` a call to `path` that ended with `code` is recorded: the path, or `""` (the
/// `_OTHER` row) for a malformed path, UNIMPLEMENTED, or a new path once [`MAX_RPC_METHODS`]
/// are known; the code, or UNKNOWN for one outside 0..=16.
#[cfg(all(feature = "metrics", feature = "grpc"))]
fn table_slot<'p>(table: &DurationTable, path: &'p str, code: u16) -> (&'p str, u16) {
    let code = if code > 16 { UNKNOWN } else { code };
    let key = match split_path(path) {
        Some(_) if code != UNIMPLEMENTED => path,
        _ => "",
    };
    // `> MAX`, not `>=`: the table may hold the `_OTHER` row besides the named ones.
    if !table.contains_key(key) && table.len() > MAX_RPC_METHODS {
        return ("", code);
    }
    (key, code)
}

/// `/{service}/{method}` into its two non-empty parts.
#[cfg(any(test, all(feature = "metrics", feature = "grpc")))]
fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some((service, method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_paths_split_into_service_and_method() {
        assert_eq!(
            split_path("/helloworld.Greeter/SayHello"),
            Some(("helloworld.Greeter", "SayHello"))
        );
        assert_eq!(split_path("/helloworld.Greeter/"), None);
        assert_eq!(split_path("//SayHello"), None);
        assert_eq!(split_path("/a/b/c"), None);
        assert_eq!(split_path("no-slash"), None);
        assert_eq!(split_path("/"), None);
    }

    #[cfg(all(feature = "metrics", feature = "grpc"))]
    #[test]
    fn duration_labels_are_bounded() {
        let mut table = DurationTable::new();
        assert_eq!(table_slot(&table, "/x.Y/Z", 0), ("/x.Y/Z", 0));
        assert_eq!(table_slot(&table, "/x.Y/Z", 99), ("/x.Y/Z", UNKNOWN));
        assert_eq!(
            table_slot(&table, "/x.Y/Z", UNIMPLEMENTED),
            ("", UNIMPLEMENTED)
        );
        assert_eq!(table_slot(&table, "garbage", 0), ("", 0));
        table.insert(String::new(), Default::default());
        for n in 0..MAX_RPC_METHODS {
            let path = format!("/flood.S/M{n}");
            assert_eq!(table_slot(&table, &path, 0).0, path, "room for {n}");
            table.insert(path, Default::default());
        }
        assert_eq!(
            table_slot(&table, "/late.S/M", 0),
            ("", 0),
            "past the bound"
        );
        assert_eq!(
            table_slot(&table, "/flood.S/M7", 5),
            ("/flood.S/M7", 5),
            "known"
        );
    }
}

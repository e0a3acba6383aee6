//! One WebSocket connection as a handler sees it.
//!
//! A [`Session`] is handed to every hook of a [`Handler`](crate::ws::Handler) by `&mut`: it carries
//! the connection's identity (id, peer address, the upgrade request), its typed per-connection
//! [`Extensions`], and the sending side of the connection's **bounded** outgoing queue. A
//! [`SessionHandle`] is the cloneable part of it, for other tasks (a broadcast hub, a timer, a
//! database listener) that push messages into the connection.
//!
//! Backpressure: the queue holds at most [`Config::outgoing_queue`](crate::ws::Config::outgoing_queue)
//! messages. When a peer reads slowly, [`Session::send`] waits for room, and while a handler waits
//! the connection reads nothing more from that peer, so a slow reader slows its own connection down
//! instead of growing server memory.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use http::{HeaderMap, Request};
use tokio::sync::oneshot;
use tungstenite::protocol::CloseFrame;

use crate::error::{Error, Result};
use crate::ws::Extensions;
use crate::ws::deflate::PerMessageDeflate;
use crate::ws::engine::queue;
use crate::ws::message::{CloseCode, Message, Utf8Bytes, fit_close_reason};

/// A connection id, unique across every process (node) of a deployment.
///
/// Two parts: the process's node number, 64 random bits drawn once per process, and a counter
/// within the process, in accept order. The Hub's broker backends rely on it: a
/// [`Hub::send_to`](crate::ws::Hub::send_to) for an id that is not local crosses to the other
/// nodes, and only the node holding that id delivers. Two processes draw the same node number
/// with a probability of about n²/2⁶⁵ for n processes. `Display` shows the local counter only
/// (short, for logs); [`node`](Self::node) and [`get`](Self::get) give both parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId {
    node: u64,
    local: u64,
}

impl ConnectionId {
    pub(crate) fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ConnectionId {
            node: process_node(),
            local: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The id from its two parts, as [`node`](Self::node) and [`get`](Self::get) return them
    /// (e.g. after carrying an id to another node as text).
    pub fn from_parts(node: u64, local: u64) -> Self {
        ConnectionId { node, local }
    }

    /// The counter part: unique within this process, in accept order.
    pub fn get(self) -> u64 {
        self.local
    }

    /// The node part: the random number of the process that accepted the connection.
    pub fn node(self) -> u64 {
        self.node
    }
}

/// This process's node number: 64 bits from std's randomly keyed hasher (seeded from the OS),
/// mixed with the process id and the clock, drawn once.
fn process_node() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static NODE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *NODE.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(since.as_nanos());
        }
        hasher.finish()
    })
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.local.fmt(f)
    }
}

/// What the connection's writer takes from the queue.
pub(crate) type Outgoing = tungstenite::Message;

/// The identity of a connection, shared by its session and all its handles.
#[derive(Debug)]
struct Identity {
    id: ConnectionId,
    peer_addr: Option<SocketAddr>,
    request: Request<()>,
    protocol: Option<http::HeaderValue>,
    /// Ends the connection without going through the (possibly full) outgoing queue; taken by the
    /// first [`SessionHandle::try_close`] that finds the queue full.
    force_close: Mutex<Option<oneshot::Sender<CloseFrame>>>,
}

/// Queues `message`, waiting for room: how every handle sends into a connection.
pub(crate) async fn enqueue(outgoing: &queue::Sender<Outgoing>, message: Outgoing) -> Result<()> {
    outgoing
        .send(message)
        .await
        .map_err(|_| Error::ConnectionClosed)
}

/// Queues `message` if there is room right now.
pub(crate) fn try_enqueue(outgoing: &queue::Sender<Outgoing>, message: Outgoing) -> Result<()> {
    outgoing.try_send(message).map_err(|error| match error {
        queue::SendError::Full(_) => {
            crate::metrics::ws_queue_full();
            Error::QueueFull
        }
        queue::SendError::Closed(_) => Error::ConnectionClosed,
    })
}

/// The queue entry asking the connection to close with `code` and `reason` (cut to fit a frame).
pub(crate) fn close_message(code: CloseCode, reason: Utf8Bytes) -> Outgoing {
    Outgoing::Close(Some(CloseFrame {
        code,
        reason: fit_close_reason(reason),
    }))
}

/// A cloneable handle that sends into one connection from any task.
///
/// Sending never grows memory without bound: the queue is bounded, [`send`](Self::send) waits for
/// room and [`try_send`](Self::try_send) fails with [`Error::QueueFull`]. Once the connection is
/// gone, both fail with [`Error::ConnectionClosed`].
#[derive(Clone)]
pub struct SessionHandle {
    identity: Arc<Identity>,
    outgoing: queue::Sender<Outgoing>,
}

impl SessionHandle {
    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.identity.id
    }

    /// The peer's address, when the transport has one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.identity.peer_addr
    }

    /// The upgrade request the connection started with.
    pub fn request(&self) -> &Request<()> {
        &self.identity.request
    }

    /// The upgrade request's path.
    pub fn path(&self) -> &str {
        self.identity.request.uri().path()
    }

    /// The upgrade request's query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.identity.request.uri().query()
    }

    /// The upgrade request's headers.
    pub fn headers(&self) -> &HeaderMap {
        self.identity.request.headers()
    }

    /// The subprotocol chosen at upgrade time, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.identity
            .protocol
            .as_ref()
            .and_then(|value| value.to_str().ok())
    }

    /// Queues a message, waiting while the queue is full.
    pub async fn send(&self, message: impl Into<Message>) -> Result<()> {
        let message: Message = message.into();
        enqueue(&self.outgoing, message.into()).await
    }

    /// Queues a message if there is room right now.
    pub fn try_send(&self, message: impl Into<Message>) -> Result<()> {
        let message: Message = message.into();
        try_enqueue(&self.outgoing, message.into())
    }

    /// Starts the closing handshake after the messages already queued.
    ///
    /// `reason` is cut to the 123 bytes a close frame can carry. Sending after this fails with
    /// [`Error::ConnectionClosed`]. [`Handler::on_close`](crate::ws::Handler::on_close) runs once the
    /// peer answers or [`Config::close_timeout`](crate::ws::Config::close_timeout) passes.
    pub async fn close(&self, code: CloseCode, reason: impl Into<Utf8Bytes>) -> Result<()> {
        enqueue(&self.outgoing, close_message(code, reason.into())).await
    }

    /// Closes the connection without waiting, even when its outgoing queue is full.
    ///
    /// With room in the queue, the close frame goes after the messages already queued, as with
    /// [`close`](Self::close). With the queue full (a peer that stopped reading), the connection
    /// is ended right away instead: the queued messages are discarded, the close frame follows
    /// whatever is already in the socket's buffers, and a hook running at that moment is cancelled.
    /// This is how a broadcaster drops a slow consumer without ever waiting on it.
    ///
    /// Fails with [`Error::ConnectionClosed`] when the connection is already closed or a forced
    /// close is already under way.
    pub fn try_close(&self, code: CloseCode, reason: impl Into<Utf8Bytes>) -> Result<()> {
        let frame = CloseFrame {
            code,
            reason: fit_close_reason(reason.into()),
        };
        match self
            .outgoing
            .try_send(tungstenite::Message::Close(Some(frame)))
        {
            Ok(()) => Ok(()),
            Err(queue::SendError::Closed(_)) => Err(Error::ConnectionClosed),
            Err(queue::SendError::Full(message)) => {
                let tungstenite::Message::Close(Some(frame)) = message else {
                    unreachable!("the message sent is a close frame")
                };
                let sender = self
                    .identity
                    .force_close
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                match sender {
                    Some(sender) => sender.send(frame).map_err(|_| Error::ConnectionClosed),
                    None => Err(Error::ConnectionClosed),
                }
            }
        }
    }

    /// Whether the connection has stopped taking messages.
    pub fn is_closed(&self) -> bool {
        self.outgoing.is_closed()
    }

    /// Free room in the outgoing queue right now.
    pub fn capacity(&self) -> usize {
        self.outgoing.capacity()
    }
}

impl fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionHandle")
            .field("id", &self.identity.id)
            .field("peer_addr", &self.identity.peer_addr)
            .field("path", &self.path())
            .finish()
    }
}

/// One WebSocket connection, as its handler sees it.
#[derive(Debug)]
pub struct Session {
    handle: SessionHandle,
    extensions: Extensions,
    compression: Option<PerMessageDeflate>,
}

impl Session {
    /// Creates a session, the receiving end of its outgoing queue, and the receiver of
    /// [`SessionHandle::try_close`]'s forced close.
    pub(crate) fn new(
        request: Request<()>,
        peer_addr: Option<SocketAddr>,
        protocol: Option<http::HeaderValue>,
        extensions: Extensions,
        queue_bound: usize,
    ) -> (
        Session,
        queue::Receiver<Outgoing>,
        oneshot::Receiver<CloseFrame>,
    ) {
        let (outgoing, receiver) = queue::channel(queue_bound);
        let (session, forced) = Session::attach(request, peer_addr, protocol, extensions, outgoing);
        (session, receiver, forced)
    }

    /// Creates a session that sends into an existing queue (a reconnecting client keeps one queue
    /// across its connections), and the receiver of its forced-close signal.
    pub(crate) fn attach(
        request: Request<()>,
        peer_addr: Option<SocketAddr>,
        protocol: Option<http::HeaderValue>,
        extensions: Extensions,
        outgoing: queue::Sender<Outgoing>,
    ) -> (Session, oneshot::Receiver<CloseFrame>) {
        let (force_close, forced) = oneshot::channel();
        let identity = Arc::new(Identity {
            id: ConnectionId::next(),
            peer_addr,
            request,
            protocol,
            force_close: Mutex::new(Some(force_close)),
        });
        let session = Session {
            handle: SessionHandle { identity, outgoing },
            extensions,
            compression: None,
        };
        (session, forced)
    }

    /// A cloneable handle for sending into this connection from other tasks.
    pub fn handle(&self) -> SessionHandle {
        self.handle.clone()
    }

    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.handle.id()
    }

    /// The peer's address, when the transport has one.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.handle.peer_addr()
    }

    /// The upgrade request the connection started with.
    pub fn request(&self) -> &Request<()> {
        self.handle.request()
    }

    /// The upgrade request's path.
    pub fn path(&self) -> &str {
        self.handle.path()
    }

    /// The upgrade request's query string without `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.handle.query()
    }

    /// The upgrade request's headers.
    pub fn headers(&self) -> &HeaderMap {
        self.handle.headers()
    }

    /// The subprotocol chosen at upgrade time, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.handle.protocol()
    }

    /// Which HTTP the WebSocket was opened over: [`http::Version::HTTP_11`] for an RFC 6455
    /// upgrade (`101`), [`http::Version::HTTP_2`] for an RFC 8441 extended CONNECT (`200`, one
    /// stream of a shared HTTP/2 connection). Handlers, guards, limits and shutdown are the same
    /// either way; see [`Upgrade::http_version`](crate::ws::Upgrade::http_version).
    pub fn http_version(&self) -> http::Version {
        self.handle.request().version()
    }

    /// The permessage-deflate parameters (RFC 7692) agreed in the opening handshake, or `None`
    /// when messages go uncompressed (the peer offered nothing acceptable, or
    /// [`Config::deflate`](crate::ws::Config::deflate) is disabled).
    pub fn compression(&self) -> Option<PerMessageDeflate> {
        self.compression
    }

    pub(crate) fn set_compression(&mut self, compression: Option<PerMessageDeflate>) {
        self.compression = compression;
    }

    /// Typed per-connection values: what guards attached at upgrade time, and the handler's own
    /// state.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Typed per-connection values, mutably.
    pub fn extensions_mut(&mut self) -> &mut Extensions {
        &mut self.extensions
    }

    /// Queues a message, waiting while the bounded queue is full (see the module docs).
    pub async fn send(&self, message: impl Into<Message>) -> Result<()> {
        self.handle.send(message).await
    }

    /// Queues a message if there is room right now, else fails with [`Error::QueueFull`].
    pub fn try_send(&self, message: impl Into<Message>) -> Result<()> {
        self.handle.try_send(message)
    }

    /// Starts the closing handshake after the messages already queued; see
    /// [`SessionHandle::close`].
    pub async fn close(&self, code: CloseCode, reason: impl Into<Utf8Bytes>) -> Result<()> {
        self.handle.close(code, reason).await
    }

    /// Closes the connection without waiting, even when the queue is full; see
    /// [`SessionHandle::try_close`].
    pub fn try_close(&self, code: CloseCode, reason: impl Into<Utf8Bytes>) -> Result<()> {
        self.handle.try_close(code, reason)
    }

    /// Whether the connection has stopped taking messages.
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }
}

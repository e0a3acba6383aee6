//! The connection engine: one task per WebSocket connection, from open to close, on the crate's
//! own frame codec (RFC 6455 section 5, with permessage-deflate of RFC 7692).
//!
//! [`serve_connection`] runs a [`Handler`] on a stream whose HTTP upgrade is already done, by this
//! crate's server or by hyper/axum; the client runs the same engine on its side ([`run`] with a
//! client [`Link`]). One task owns the stream and alternates between two phases:
//!
//! - **waiting**: write whatever the outgoing queue holds, read the next message, and watch the
//!   keepalive, idle and shutdown signals;
//! - **handling**: run the handler on one message while still draining the outgoing queue, so a
//!   handler that sends many replies is never stuck behind its own queue.
//!
//! Writes are batched: everything queued is encoded into one buffer and flushed once. Nothing more is
//! taken from the queue while a flush is pending, so a peer that reads slowly stops the queue (and
//! so the handler) instead of growing a buffer.
//!
//! Every way a connection can end is answered the way RFC 6455 asks: invalid UTF-8 gets close 1007,
//! an oversize message or frame 1009, a protocol violation 1002 (RFC 6455 section 7.4.1), a failing
//! or panicking handler 1011, server shutdown 1001. After a protocol error the connection sends its
//! close frame, shuts down its write side and drains input for a while, so the peer reads the close
//! frame rather than a TCP reset.
//!
//! # Layout
//!
//! One file per job. The phases share one state ([`Connection`]), and each file adds the methods
//! of its job to it, so the file tree reads like the paragraphs above:
//!
//! - this file: the entry points, [`Link`] (what a connection is given besides the stream) and
//!   [`run`], the loop of open, waiting, handling and close that every connection goes through;
//! - `connection.rs`: the state one task owns, and how it is set up from a [`Link`];
//! - `event.rs`: the waiting phase, what wakes the connection (socket, queue, shutdown, forced
//!   close, timers);
//! - `handling.rs`: the handling phase, a hook polled together with the write path, and panic
//!   containment;
//! - `write.rs`: write batching and flushing;
//! - `end.rs`: how a connection ends and which failure leads to which close code;
//! - `close.rs`: the closing handshake and lingering after a failed connection;
//! - `outgoing.rs`: the outgoing queue as the engine takes from it ([`Queue`]: owned by a server
//!   connection, lent by a reconnecting client), on top of `queue.rs`, the bounded channel itself;
//! - `frame.rs`: the frame format (header parsing and encoding, masking, incremental UTF-8, close
//!   payloads); `read.rs`: frames from the socket into messages, every receiver check of RFC 6455
//!   section 5, inflating; `out.rs`: messages into frames, deflating; `budget.rs`: the
//!   server-wide [`MemoryBudget`](crate::ws::MemoryBudget) partial messages are charged to;
//! - `timers.rs`: keepalive, idle and write-stall deadlines on one timer entry.
//!
//! The split is by module only: every method is still on the one generic `Connection<S>`, so the
//! compiler sees the same code as when it lived in one file (same monomorphisations, same
//! inlining, no dynamic dispatch).

pub(crate) mod budget;
mod close;
mod connection;
mod end;
mod event;
mod frame;
mod handling;
mod out;
mod outgoing;
pub(crate) mod queue;
mod read;
mod timers;
mod write;

use futures::FutureExt;
use futures::future::Fuse;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tungstenite::Utf8Bytes;
use tungstenite::protocol::{CloseFrame, Role};

pub(crate) use outgoing::Queue;

use crate::ws::connections::ConnectionGuard;
use crate::ws::deflate::PerMessageDeflate;
use crate::ws::message::{CloseCode, CloseReason, ClosedBy};
use crate::ws::{Config, Handler, Session, Upgrade};
use connection::Connection;
use end::{End, handler_failed};
use event::Event;
use handling::contain;

/// Runs `handler` on an upgraded WebSocket stream until the connection ends, and returns why it
/// ended.
///
/// Use this when something else did the HTTP upgrade (hyper, axum): validate the request with
/// [`Upgrade::from_request`], run [`Handler::on_upgrade`], send [`Upgrade::response`], then call this
/// with the upgraded stream. For permessage-deflate, call
/// [`Upgrade::negotiate_compression`] with `config.deflate` before taking the response; without
/// it messages go uncompressed. The limits, keepalive and timeouts of `config` apply as on the
/// crate's own [`Server`](crate::ws::Server).
///
/// ```no_run
/// use wsgrpc::ws::{handler_fn, serve_connection, Config, Message, SessionHandle, Upgrade};
///
/// # async fn example(io: tokio::net::TcpStream, request: http::Request<()>) {
/// let echo = handler_fn(|session: SessionHandle, message: Message| async move {
///     session.send(message).await
/// });
/// // `request` arrived on `io`, and the 101 from `Upgrade::response` has been sent.
/// let upgrade = Upgrade::from_request(request, None).expect("a websocket upgrade request");
/// let reason = serve_connection(io, upgrade, &echo, &Config::default()).await;
/// println!("closed: {reason}");
/// # }
/// ```
pub async fn serve_connection<S, H>(
    io: S,
    upgrade: Upgrade,
    handler: &H,
    config: &Config,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    let link = server_link(upgrade, config, Vec::new());
    let _open = crate::metrics::ws_connection_opened();
    crate::metrics::ws_connection_closed(run(io, link, handler, config).await)
}

/// Like [`serve_connection`], for a connection counted in a [`Connections`](crate::ws::Connections)
/// set: it closes with 1001 when [`close_all`](crate::ws::Connections::close_all) (or
/// [`shutdown`](crate::ws::Connections::shutdown)) is called, and ends at once
/// when the shutdown's wait is over. The guard is released when the connection has ended.
///
/// This is how servers built on hyper or axum give their WebSockets the graceful shutdown of
/// the crate's own [`Server`](crate::ws::Server); the one-port [`App`](crate::serve::App) and the
/// [axum adapter](crate::serve::axum) use it.
pub async fn serve_connection_with<S, H>(
    io: S,
    upgrade: Upgrade,
    handler: &H,
    config: &Config,
    guard: ConnectionGuard,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    serve_registered(io, upgrade, Vec::new(), handler, config, guard).await
}

/// Runs a server-side connection registered in `guard`'s set, ending it at once on abort.
///
/// Not an `async fn`: the upgrade becomes the session here, before the connection's future
/// exists, so that future does not keep the request (about 480 bytes) a second time for as long
/// as the connection lives.
pub(crate) fn serve_registered<'a, S, H>(
    io: S,
    upgrade: Upgrade,
    read_ahead: Vec<u8>,
    handler: &'a H,
    config: &'a Config,
    guard: ConnectionGuard,
) -> impl Future<Output = CloseReason> + Send + 'a
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'a,
    H: Handler,
{
    registered(
        io,
        server_link(upgrade, config, read_ahead),
        handler,
        config,
        guard,
    )
}

async fn registered<S, H>(
    io: S,
    link: Link<'static>,
    handler: &H,
    config: &Config,
    mut guard: ConnectionGuard,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    let mut shutdown = guard.register().fuse();
    let aborted = guard.aborted();
    let mut link: Link<'_> = link;
    link.shutdown = Some(&mut shutdown);
    let _open = crate::metrics::ws_connection_opened();
    let reason = tokio::select! {
        reason = run(io, link, handler, config) => reason,
        () = aborted => CloseReason::new(CloseCode::Abnormal, "shutdown timeout passed", ClosedBy::Local),
    };
    crate::metrics::ws_connection_closed(reason)
}

/// The link of a server-side connection: its session, its own queue, 1001 on shutdown (its
/// signal is attached once the connection is registered).
fn server_link(upgrade: Upgrade, config: &Config, read_ahead: Vec<u8>) -> Link<'static> {
    let compression = upgrade.compression();
    let (request, peer_addr, protocol, extensions) = upgrade.into_parts();
    let (session, outgoing, forced_close) = Session::new(
        request,
        peer_addr,
        protocol,
        extensions,
        config.outgoing_queue,
    );
    Link {
        role: Role::Server,
        session,
        outgoing: Queue::Owned(outgoing),
        read_ahead,
        shutdown: None,
        shutdown_frame: SERVER_SHUTDOWN,
        forced_close,
        compression,
    }
}

/// What every connection gets when its server shuts down.
pub(crate) const SERVER_SHUTDOWN: CloseFrame = CloseFrame {
    code: CloseCode::Away,
    reason: Utf8Bytes::from_static("server shutting down"),
};

/// Everything a connection's task needs besides the stream, the handler and the limits.
pub(crate) struct Link<'q> {
    /// Server or client: decides masking and who closes TCP first.
    pub(crate) role: Role,
    pub(crate) session: Session,
    pub(crate) outgoing: Queue<'q>,
    /// Bytes that arrived after the HTTP head, already part of the WebSocket stream.
    pub(crate) read_ahead: Vec<u8>,
    /// Fires (or its sender is dropped) when this side should close with `shutdown_frame`.
    /// Fused, so an owner that reuses it across connections can tell it already fired.
    pub(crate) shutdown: Option<&'q mut Fuse<oneshot::Receiver<()>>>,
    pub(crate) shutdown_frame: CloseFrame,
    /// Fires when [`SessionHandle::try_close`](crate::ws::SessionHandle::try_close) finds the
    /// queue full: close at once, dropping what is queued.
    pub(crate) forced_close: oneshot::Receiver<CloseFrame>,
    /// permessage-deflate, when the handshake agreed on it.
    pub(crate) compression: Option<PerMessageDeflate>,
}

/// The body of every connection, server or client side: open, messages, close.
pub(crate) async fn run<S, H>(io: S, link: Link<'_>, handler: &H, config: &Config) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    let (mut connection, mut session) = Connection::new(io, link, config);
    tracing::debug!(id = %session.id(), path = session.path(), "websocket connection opened");

    let mut end = match connection
        .handle(contain(handler.on_open(&mut session)))
        .await
    {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(handler_failed(error)),
        Err(end) => Some(end),
    };
    while end.is_none() {
        end = match connection.next_event().await {
            Event::Message(message) => match connection
                .handle(contain(handler.on_message(&mut session, message)))
                .await
            {
                Ok(Ok(())) => connection.closing.clone().map(End::Close),
                Ok(Err(error)) => Some(handler_failed(error)),
                Err(end) => Some(end),
            },
            Event::End(end) => Some(end),
        };
    }
    let reason = match end {
        // Boxed: the closing sequence runs once, and keeping its (large) state out of the
        // connection's future keeps every idle connection smaller.
        Some(end) => Box::pin(connection.finish(end)).await,
        None => unreachable!("the loop only ends with an end"),
    };
    tracing::debug!(id = %session.id(), %reason, "websocket connection closed");
    if let Err(error) = contain(handler.on_close(&mut session, reason.clone()).map(Ok)).await {
        tracing::error!(id = %session.id(), error = %error, "on_close failed");
    }
    reason
}

//! One WebSocket connection, driven by one task from open to close.
//!
//! [`serve_connection`] runs a [`Handler`] on a stream whose HTTP upgrade is already done, by this
//! crate's server or by hyper/axum. One task owns the stream and alternates between two phases:
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

use std::future::{Future, poll_fn};
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures::future::Fuse;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tungstenite::Utf8Bytes;
use tungstenite::protocol::{CloseFrame, Role, WebSocketContext};

use crate::error::Error;
use crate::ws::connections::ConnectionGuard;
use crate::ws::io::{ReadAhead, SyncIo};
use crate::ws::message::{CloseCode, CloseReason, ClosedBy, Message};
use crate::ws::queue;
use crate::ws::session::Outgoing;
use crate::ws::timers::{TimerEvent, Timers};
use crate::ws::{Config, Handler, Session, Upgrade};

/// Outgoing messages encoded per batch before the batch is flushed and the reader gets a turn.
const MAX_BATCH: usize = 256;

/// Messages handled between two flushes at most, so replies to a long burst still leave in
/// bounded time.
const MAX_READS_BEFORE_FLUSH: u32 = 64;

/// Runs `handler` on an upgraded WebSocket stream until the connection ends, and returns why it
/// ended.
///
/// Use this when something else did the HTTP upgrade (hyper, axum): validate the request with
/// [`Upgrade::from_request`], run [`Handler::on_upgrade`], send [`Upgrade::response`], then call this
/// with the upgraded stream. The limits, keepalive and timeouts of `config` apply as on the
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
    let link = server_link(upgrade, config, Vec::new(), None);
    run(io, link, handler, config).await
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
    mut guard: ConnectionGuard,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    serve_registered(io, upgrade, Vec::new(), handler, config, &mut guard).await
}

/// Runs a server-side connection registered in `guard`'s set, ending it at once on abort.
pub(crate) async fn serve_registered<S, H>(
    io: S,
    upgrade: Upgrade,
    read_ahead: Vec<u8>,
    handler: &H,
    config: &Config,
    guard: &mut ConnectionGuard,
) -> CloseReason
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    let mut shutdown = guard.register().fuse();
    let aborted = guard.aborted();
    let link = server_link(upgrade, config, read_ahead, Some(&mut shutdown));
    tokio::select! {
        reason = run(io, link, handler, config) => reason,
        () = aborted => CloseReason::new(CloseCode::Abnormal, "shutdown timeout passed", ClosedBy::Local),
    }
}

/// The link of a server-side connection: its session, its own queue, 1001 on shutdown.
fn server_link<'q>(
    upgrade: Upgrade,
    config: &Config,
    read_ahead: Vec<u8>,
    shutdown: Option<&'q mut Fuse<oneshot::Receiver<()>>>,
) -> Link<'q> {
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
        shutdown,
        shutdown_frame: SERVER_SHUTDOWN,
        forced_close,
    }
}

/// What every connection gets when its server shuts down.
pub(crate) const SERVER_SHUTDOWN: CloseFrame = CloseFrame {
    code: CloseCode::Away,
    reason: Utf8Bytes::from_static("server shutting down"),
};

/// The receiving end of a connection's outgoing queue.
pub(crate) enum Queue<'q> {
    /// A server connection's queue lives and dies with the connection.
    Owned(queue::Receiver<Outgoing>),
    /// A reconnecting client's queue outlives each connection, so that what is sent while
    /// disconnected waits (bounded) for the next one. Only an explicit close ends it.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    Shared(&'q mut queue::Receiver<Outgoing>),
}

impl Queue<'_> {
    /// Takes the next message without registering for a wake-up: the connection calls this while
    /// it is busy anyway, so a handler's own reply does not schedule a needless extra poll.
    fn try_recv(&mut self) -> Option<Outgoing> {
        match self {
            Queue::Owned(receiver) => receiver.try_recv(),
            Queue::Shared(receiver) => receiver.try_recv(),
        }
    }

    /// Stops being woken by new messages until the next [`poll_recv`](Self::poll_recv).
    fn unwatch(&mut self) {
        match self {
            Queue::Owned(receiver) => receiver.unwatch(),
            Queue::Shared(receiver) => receiver.unwatch(),
        }
    }

    /// Takes the next message, or registers the task to be woken when one arrives.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outgoing>> {
        match self {
            Queue::Owned(receiver) => receiver.poll_recv(cx),
            Queue::Shared(receiver) => receiver.poll_recv(cx),
        }
    }

    /// Refuses further messages for good: a close was requested.
    fn close(&mut self) {
        match self {
            Queue::Owned(receiver) => receiver.close(),
            Queue::Shared(receiver) => receiver.close(),
        }
    }

    /// The connection is over: an owned queue refuses further messages, a shared one keeps
    /// buffering for the next connection.
    fn connection_ended(&mut self) {
        if let Queue::Owned(receiver) = self {
            receiver.close();
        }
    }
}

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

/// Runs a handler hook, turning a panic into [`Error::HandlerPanic`] so only this connection pays.
fn contain<T>(
    hook: impl Future<Output = crate::Result<T>>,
) -> impl Future<Output = crate::Result<T>> {
    // A combinator rather than an `async fn`: the hook's future is stored once, not once per
    // layer of async state, which keeps every connection's task smaller.
    AssertUnwindSafe(hook)
        .catch_unwind()
        .map(|outcome| match outcome {
            Ok(result) => result,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| text.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                Err(Error::HandlerPanic(message))
            }
        })
}

fn handler_failed(error: Error) -> End {
    match error {
        // The handler only saw that its own connection is going away; not a handler fault.
        Error::ConnectionClosed => End::Close(close_frame(CloseCode::Normal, "")),
        Error::HandlerPanic(panic) => {
            tracing::error!(panic = %panic, "websocket handler panicked; closing its connection with 1011");
            End::Close(close_frame(CloseCode::Error, "handler panicked"))
        }
        error => {
            tracing::warn!(error = %error, source = ?std::error::Error::source(&error), "websocket handler failed; closing with 1011");
            End::Close(close_frame(error.close_code(), "handler error"))
        }
    }
}

fn close_frame(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }
}

pin_project_lite::pin_project! {
    /// A handler hook running on a connection; see [`Connection::handle`].
    struct Handling<'a, 'c, 'q, S, F> {
        connection: &'a mut Connection<'c, 'q, S>,
        #[pin]
        hook: F,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin, F: Future> Future for Handling<'_, '_, '_, S, F> {
    type Output = Result<F::Output, End>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.connection.poll_handling(this.hook, cx)
    }
}

/// What the waiting phase produced.
enum Event {
    Message(Message),
    End(End),
}

/// How a connection ends, which decides what is still sent and awaited.
#[derive(Debug)]
enum End {
    /// The peer sent a close frame; tungstenite has queued the echo.
    PeerClosed(Option<CloseFrame>),
    /// This side closes with a handshake: send the frame (unless already sent) and wait a bounded
    /// time for the peer's reply.
    Close(CloseFrame),
    /// The peer broke the protocol: send the frame, stop writing, and drain input for a while so the
    /// peer reads the frame instead of a reset (RFC 6455 section 7.1.7, "fail the connection").
    Fail(CloseFrame),
    /// The transport is gone or hopeless: no more I/O.
    Abort(CloseReason),
}

fn abnormal(reason: &'static str) -> End {
    End::Abort(CloseReason::new(
        CloseCode::Abnormal,
        Utf8Bytes::from_static(reason),
        ClosedBy::Peer,
    ))
}

/// Maps a read or write error of tungstenite to how the connection ends.
fn end_for(error: tungstenite::Error) -> End {
    use tungstenite::error::{Error as Ws, ProtocolError};
    match error {
        Ws::ConnectionClosed | Ws::AlreadyClosed => abnormal("connection closed"),
        Ws::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            abnormal("closed without a close frame")
        }
        Ws::Io(error) => {
            tracing::debug!(%error, "websocket transport error");
            abnormal("transport error")
        }
        error => {
            let error = Error::from(error);
            let code = error.close_code();
            tracing::debug!(%error, source = ?std::error::Error::source(&error), code = u16::from(code), "websocket protocol error");
            let reason = match code {
                CloseCode::Invalid => "invalid utf-8",
                CloseCode::Size => "message too big",
                CloseCode::Protocol => "protocol error",
                _ => "internal error",
            };
            End::Fail(close_frame(code, reason))
        }
    }
}

struct Connection<'c, 'q, S> {
    io: ReadAhead<S>,
    ws: WebSocketContext,
    outgoing: Queue<'q>,
    /// Frames were handed to tungstenite and not yet flushed to the socket.
    flush_pending: bool,
    /// The last flush could not finish: the peer is not reading fast enough.
    write_blocked: bool,
    /// Messages handed to the handler since the last flush.
    reads_since_flush: u32,
    /// The close frame this side has sent, if it has.
    closing: Option<CloseFrame>,
    /// Frames of any kind received, for keepalive.
    inbound_frames: u64,
    shutdown: Option<&'q mut Fuse<oneshot::Receiver<()>>>,
    shutdown_frame: CloseFrame,
    /// [`SessionHandle::try_close`](crate::ws::SessionHandle::try_close) on a full queue.
    forced_close: Option<oneshot::Receiver<CloseFrame>>,
    timers: Timers,
    config: &'c Config,
}

impl<'c, 'q, S> Connection<'c, 'q, S> {
    /// Sets a connection up. Not `async`, so that none of its temporaries (the link, the protocol
    /// context before it moves in) take room in every connection's task.
    fn new(io: S, link: Link<'q>, config: &'c Config) -> (Self, Session) {
        let Link {
            role,
            session,
            outgoing,
            read_ahead,
            shutdown,
            shutdown_frame,
            forced_close,
        } = link;
        let ws = if read_ahead.is_empty() {
            WebSocketContext::new(role, Some(config.websocket_config()))
        } else {
            WebSocketContext::from_partially_read(read_ahead, role, Some(config.websocket_config()))
        };
        let connection = Connection {
            io: ReadAhead::new(io),
            ws,
            outgoing,
            flush_pending: false,
            write_blocked: false,
            reads_since_flush: 0,
            closing: None,
            inbound_frames: 0,
            shutdown,
            shutdown_frame,
            forced_close: Some(forced_close),
            timers: Timers::new(config),
            config,
        };
        (connection, session)
    }
}

impl<'c, 'q, S: AsyncRead + AsyncWrite + Unpin> Connection<'c, 'q, S> {
    /// Waiting phase: returns the next message, or how the connection ends.
    async fn next_event(&mut self) -> Event {
        poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Event> {
        // The task is running now, so replies queued while it runs are taken without a wake-up;
        // `watch_queue` registers again before it sleeps.
        self.outgoing.unwatch();
        // Replies to the previous message go into the write buffer now (a close among them is
        // noticed before anything else is read), but reach the socket only when nothing more is
        // ready to read: a burst of requests is answered with one write, not one per message.
        if let Err(end) = self.drain_queue(cx) {
            return Poll::Ready(Event::End(end));
        }
        if let Some(frame) = &self.closing {
            return Poll::Ready(Event::End(End::Close(frame.clone())));
        }
        let read_first = self.reads_since_flush < MAX_READS_BEFORE_FLUSH;
        if read_first {
            match self.poll_read(cx) {
                Poll::Ready(Ok(message)) => {
                    self.reads_since_flush += 1;
                    return Poll::Ready(Event::Message(message));
                }
                Poll::Ready(Err(end)) => return Poll::Ready(Event::End(end)),
                Poll::Pending => {}
            }
        }
        if let Err(end) = self.poll_write(cx) {
            return Poll::Ready(Event::End(end));
        }
        self.reads_since_flush = 0;
        if let Some(frame) = &self.closing {
            return Poll::Ready(Event::End(End::Close(frame.clone())));
        }
        if !read_first {
            match self.poll_read(cx) {
                Poll::Ready(Ok(message)) => {
                    self.reads_since_flush += 1;
                    return Poll::Ready(Event::Message(message));
                }
                Poll::Ready(Err(end)) => return Poll::Ready(Event::End(end)),
                Poll::Pending => {}
            }
        }
        match self.watch_queue(cx) {
            Err(end) => return Poll::Ready(Event::End(end)),
            Ok(true) => {
                // Something was sent meanwhile: go round again rather than sleep.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Ok(false) => {}
        }
        if let Some(shutdown) = &mut self.shutdown
            && Pin::new(&mut **shutdown).poll(cx).is_ready()
        {
            self.shutdown = None;
            return Poll::Ready(Event::End(End::Close(self.shutdown_frame.clone())));
        }
        if let Poll::Ready(frame) = self.poll_forced_close(cx) {
            return Poll::Ready(Event::End(End::Close(frame)));
        }
        match self.timers.poll(cx, self.inbound_frames, false) {
            Poll::Ready(TimerEvent::SendPing) => {
                if let Err(end) = self.send_ping(cx) {
                    return Poll::Ready(Event::End(end));
                }
                Poll::Pending
            }
            Poll::Ready(TimerEvent::KeepaliveTimeout) => Poll::Ready(Event::End(End::Abort(
                CloseReason::new(CloseCode::Abnormal, "keepalive timeout", ClosedBy::Peer),
            ))),
            Poll::Ready(TimerEvent::Idle) => Poll::Ready(Event::End(End::Close(close_frame(
                CloseCode::Away,
                "idle timeout",
            )))),
            Poll::Ready(TimerEvent::WriteStalled) => {
                Poll::Ready(Event::End(abnormal("write timed out")))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Handling phase: runs a handler hook to completion while draining the outgoing queue.
    fn handle<F: Future>(&mut self, hook: F) -> Handling<'_, 'c, 'q, S, F> {
        Handling {
            connection: self,
            hook,
        }
    }

    fn poll_handling<F: Future>(
        &mut self,
        mut hook: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<F::Output, End>> {
        // A hook that sends a burst fills the queue; draining it right away lets the hook go on
        // without a round trip through the scheduler.
        for _ in 0..4 {
            if let Poll::Ready(output) = hook.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            match self.poll_write(cx) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(end) => return Poll::Ready(Err(end)),
            }
        }
        // A forced close exists for a peer that stopped reading, and the hook may be the one
        // waiting on that peer's full queue: it is cancelled rather than waited for.
        if let Poll::Ready(frame) = self.poll_forced_close(cx) {
            return Poll::Ready(Err(End::Close(frame)));
        }
        // The hook may wait on something else for a while: messages other tasks send meanwhile
        // should still go out.
        if let Err(end) = self.watch_queue(cx) {
            return Poll::Ready(Err(end));
        }
        match self.timers.poll(cx, self.inbound_frames, true) {
            Poll::Ready(TimerEvent::WriteStalled) => Poll::Ready(Err(abnormal("write timed out"))),
            _ => Poll::Pending,
        }
    }

    /// Whether a [`SessionHandle::try_close`](crate::ws::SessionHandle::try_close) found the queue
    /// full and asked to end the connection now.
    fn poll_forced_close(&mut self, cx: &mut Context<'_>) -> Poll<CloseFrame> {
        let Some(forced) = &mut self.forced_close else {
            return Poll::Pending;
        };
        match Pin::new(forced).poll(cx) {
            Poll::Ready(Ok(frame)) => {
                self.forced_close = None;
                Poll::Ready(frame)
            }
            // The sender lives as long as the session, so this means nobody can ask any more.
            Poll::Ready(Err(_)) => {
                self.forced_close = None;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// Reads the next data message, answering control frames on the way.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Result<Message, End>> {
        loop {
            let result = self.ws.read(&mut SyncIo::new(&mut self.io, cx));
            match result {
                Ok(message) => {
                    self.inbound_frames += 1;
                    match message {
                        tungstenite::Message::Text(text) => {
                            self.timers.touch_idle();
                            return Poll::Ready(Ok(Message::Text(text)));
                        }
                        tungstenite::Message::Binary(data) => {
                            self.timers.touch_idle();
                            return Poll::Ready(Ok(Message::Binary(data)));
                        }
                        tungstenite::Message::Close(frame) => {
                            return Poll::Ready(Err(End::PeerClosed(frame)));
                        }
                        // tungstenite has queued the pong already; it goes out with the next write.
                        tungstenite::Message::Ping(_) => self.flush_pending = true,
                        tungstenite::Message::Pong(_) | tungstenite::Message::Frame(_) => {}
                    }
                }
                Err(tungstenite::Error::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                    return Poll::Pending;
                }
                Err(error) => return Poll::Ready(Err(end_for(error))),
            }
        }
    }

    /// Moves queued messages into tungstenite's write buffer, without a syscall unless the buffer
    /// passes `write_buffer_size`. Takes nothing while an earlier flush is still blocked, which is
    /// what keeps a slow reader from growing that buffer. Returns whether anything was taken.
    fn drain_queue(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
        if self.closing.is_some() || self.write_blocked {
            return Ok(false);
        }
        let mut taken = 0;
        while taken < MAX_BATCH {
            let Some(message) = self.outgoing.try_recv() else {
                break;
            };
            taken += 1;
            if self.take(cx, message)? {
                break;
            }
        }
        if taken == MAX_BATCH {
            // More may be queued: come back after the reader had its turn.
            cx.waker().wake_by_ref();
        }
        if taken > 0 {
            self.timers.touch_idle();
        }
        Ok(taken > 0)
    }

    /// Before the task sleeps: registers for messages sent from elsewhere (other tasks' handles),
    /// sending any that raced in. Returns whether the queue had something after all.
    fn watch_queue(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
        if self.closing.is_some() || self.write_blocked {
            return Ok(false);
        }
        match self.outgoing.poll_recv(cx) {
            Poll::Ready(Some(message)) => {
                let close = matches!(message, tungstenite::Message::Close(_));
                self.take(cx, message)?;
                if !close {
                    self.poll_write(cx)?;
                }
                Ok(true)
            }
            Poll::Ready(None) | Poll::Pending => Ok(false),
        }
    }

    /// Hands one queued entry to tungstenite: a close frame starts the closing handshake, a
    /// message goes into the write buffer. A full socket marks the writer blocked. Returns whether
    /// to stop taking: after a close, or until the socket drains.
    fn take(&mut self, cx: &mut Context<'_>, message: Outgoing) -> Result<bool, End> {
        if let tungstenite::Message::Close(frame) = message {
            let frame = frame.unwrap_or_else(|| close_frame(CloseCode::Normal, ""));
            self.start_close(cx, frame)?;
            return Ok(true);
        }
        self.flush_pending = true;
        match self.ws.write(&mut SyncIo::new(&mut self.io, cx), message) {
            Ok(()) => Ok(false),
            // Accepted into the buffer, but the socket is full.
            Err(tungstenite::Error::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                self.write_blocked = true;
                Ok(true)
            }
            Err(error) => Err(end_for(error)),
        }
    }

    /// Moves queued messages to the socket: encodes what is queued, flushes once. Returns whether
    /// anything was taken from the queue (so the caller may give a waiting sender another turn).
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
        let mut progressed = false;
        for _ in 0..2 {
            if self.flush_pending && !self.poll_flush(cx)? {
                return Ok(progressed);
            }
            if !self.drain_queue(cx)? {
                return Ok(progressed);
            }
            progressed = true;
        }
        if self.flush_pending {
            self.poll_flush(cx)?;
        }
        Ok(progressed)
    }

    /// Flushes tungstenite's buffer. Returns whether it is empty now.
    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
        match self.ws.flush(&mut SyncIo::new(&mut self.io, cx)) {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => {
                self.flush_pending = false;
                self.write_blocked = false;
                self.timers.disarm_write_stall();
                Ok(true)
            }
            Err(tungstenite::Error::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                self.write_blocked = true;
                self.timers.arm_write_stall();
                Ok(false)
            }
            Err(error) => Err(end_for(error)),
        }
    }

    fn send_ping(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        self.flush_pending = true;
        match self.ws.write(
            &mut SyncIo::new(&mut self.io, cx),
            tungstenite::Message::Ping(Default::default()),
        ) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(end_for(error)),
        }
        self.poll_flush(cx).map(drop)
    }

    /// Sends this side's close frame after everything already written, and stops taking messages.
    fn start_close(&mut self, cx: &mut Context<'_>, frame: CloseFrame) -> Result<(), End> {
        self.outgoing.close();
        if self.closing.is_some() || !self.ws.can_write() {
            return Ok(());
        }
        self.closing = Some(frame.clone());
        self.flush_pending = true;
        match self
            .ws
            .close(&mut SyncIo::new(&mut self.io, cx), Some(frame))
        {
            Ok(()) | Err(tungstenite::Error::ConnectionClosed) => {
                self.flush_pending = false;
                Ok(())
            }
            Err(tungstenite::Error::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                Ok(())
            }
            Err(error) => Err(end_for(error)),
        }
    }

    /// Carries out the end of the connection, bounded by `close_timeout`, and says why it ended.
    async fn finish(&mut self, end: End) -> CloseReason {
        self.outgoing.connection_ended();
        let close_timeout = self.config.close_timeout;
        match end {
            End::PeerClosed(frame) => {
                // Drive out the echo tungstenite queued; the server then closes TCP first (RFC 6455
                // section 7.1.1), which tungstenite reports as ConnectionClosed.
                let _ =
                    tokio::time::timeout(close_timeout, poll_fn(|cx| self.poll_flush_to_end(cx)))
                        .await;
                self.shutdown_write(close_timeout).await;
                match frame {
                    Some(frame) => CloseReason::new(frame.code, frame.reason, ClosedBy::Peer),
                    None => CloseReason::new(CloseCode::Status, "", ClosedBy::Peer),
                }
            }
            End::Close(frame) => {
                let reason = CloseReason::new(frame.code, frame.reason.clone(), ClosedBy::Local);
                let handshake = async {
                    if poll_fn(|cx| Poll::Ready(self.start_close(cx, frame.clone())))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    // Discard whatever the peer still sends until its close frame arrives.
                    poll_fn(|cx| self.poll_until_closed(cx)).await;
                };
                if tokio::time::timeout(close_timeout, handshake)
                    .await
                    .is_err()
                {
                    tracing::debug!("peer did not answer the close frame in time");
                }
                self.shutdown_write(close_timeout).await;
                reason
            }
            End::Fail(frame) => {
                let reason = CloseReason::new(frame.code, frame.reason.clone(), ClosedBy::Local);
                let deadline = Instant::now() + close_timeout;
                let sent = async {
                    if poll_fn(|cx| Poll::Ready(self.start_close(cx, frame.clone())))
                        .await
                        .is_ok()
                    {
                        let _ = poll_fn(|cx| self.poll_flush_to_end(cx)).await;
                    }
                };
                let _ = tokio::time::timeout_at(deadline, sent).await;
                self.shutdown_write(close_timeout).await;
                self.linger(deadline).await;
                reason
            }
            End::Abort(reason) => reason,
        }
    }

    /// Flushes until tungstenite's buffer is empty or the connection is terminated.
    fn poll_flush_to_end(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), End>> {
        match self.poll_flush(cx) {
            Ok(true) => Poll::Ready(Ok(())),
            Ok(false) => Poll::Pending,
            Err(end) => Poll::Ready(Err(end)),
        }
    }

    /// Reads and discards until the close handshake completes or the transport ends.
    fn poll_until_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match self.ws.read(&mut SyncIo::new(&mut self.io, cx)) {
                Ok(_) => continue,
                Err(tungstenite::Error::Io(error)) if error.kind() == io::ErrorKind::WouldBlock => {
                    return Poll::Pending;
                }
                Err(_) => return Poll::Ready(()),
            }
        }
    }

    async fn shutdown_write(&mut self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.io.shutdown()).await;
    }

    /// Reads and discards raw input until the peer closes or `deadline` passes.
    async fn linger(&mut self, deadline: Instant) {
        let mut scratch = [0u8; 1024];
        let drain = async {
            while let Ok(read) = self.io.read(&mut scratch).await {
                if read == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, drain).await;
    }
}

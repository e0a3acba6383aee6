//! The connection state: what one connection's task owns besides the handler and its session.
//!
//! One struct, because the phases share it: the waiting phase reads and writes through the same
//! tungstenite context the handling phase drains the queue into, and the closing handshake takes
//! over both. Each phase adds its methods in its own file; the fields are visible to those files
//! only (`pub(super)`), nowhere else in the crate.

use futures::future::Fuse;
use tokio::sync::oneshot;
use tungstenite::protocol::{CloseFrame, WebSocketContext};

use super::Link;
use super::io::ReadAhead;
use super::outgoing::Queue;
use super::timers::Timers;
use crate::ws::{Config, Session};

/// One connection's state, from the 101 to the end of the closing handshake.
pub(super) struct Connection<'c, 'q, S> {
    pub(super) io: ReadAhead<S>,
    pub(super) ws: WebSocketContext,
    pub(super) outgoing: Queue<'q>,
    /// Frames were handed to tungstenite and not yet flushed to the socket.
    pub(super) flush_pending: bool,
    /// The last flush could not finish: the peer is not reading fast enough.
    pub(super) write_blocked: bool,
    /// Messages handed to the handler since the last flush.
    pub(super) reads_since_flush: u32,
    /// The close frame this side has sent, if it has.
    pub(super) closing: Option<CloseFrame>,
    /// Frames of any kind received, for keepalive.
    pub(super) inbound_frames: u64,
    pub(super) shutdown: Option<&'q mut Fuse<oneshot::Receiver<()>>>,
    pub(super) shutdown_frame: CloseFrame,
    /// [`SessionHandle::try_close`](crate::ws::SessionHandle::try_close) on a full queue.
    pub(super) forced_close: Option<oneshot::Receiver<CloseFrame>>,
    pub(super) timers: Timers,
    pub(super) config: &'c Config,
}

impl<'c, 'q, S> Connection<'c, 'q, S> {
    /// Sets a connection up. Not `async`, so that none of its temporaries (the link, the protocol
    /// context before it moves in) take room in every connection's task.
    pub(super) fn new(io: S, link: Link<'q>, config: &'c Config) -> (Self, Session) {
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

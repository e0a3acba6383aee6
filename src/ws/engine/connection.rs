//! The connection state: what one connection's task owns besides the handler and its session.
//!
//! One struct, because the phases share it: the waiting phase reads and writes through the same
//! codec halves the handling phase drains the queue into, and the closing handshake takes over
//! both. Each phase adds its methods in its own file; the fields are visible to those files only
//! (`pub(super)`), nowhere else in the crate.

use futures::future::Fuse;
use tokio::sync::oneshot;
use tungstenite::protocol::{CloseFrame, Role};

use super::Link;
use super::out::Writer;
use super::outgoing::Queue;
use super::read::Reader;
use super::timers::Timers;
use crate::ws::{Config, Session};

/// One connection's state, from the 101 to the end of the closing handshake.
pub(super) struct Connection<'c, 'q, S> {
    pub(super) io: S,
    pub(super) reader: Reader,
    pub(super) writer: Writer,
    pub(super) role: Role,
    pub(super) outgoing: Queue<'q>,
    /// Frames were encoded and not yet flushed to the socket.
    pub(super) flush_pending: bool,
    /// The last flush could not finish: the peer is not reading fast enough.
    pub(super) write_blocked: bool,
    /// Messages handed to the handler since the last flush.
    pub(super) reads_since_flush: u32,
    /// The close frame this side has sent, if it has.
    pub(super) closing: Option<CloseFrame>,
    pub(super) shutdown: Option<&'q mut Fuse<oneshot::Receiver<()>>>,
    pub(super) shutdown_frame: CloseFrame,
    /// [`SessionHandle::try_close`](crate::ws::SessionHandle::try_close) on a full queue.
    pub(super) forced_close: Option<oneshot::Receiver<CloseFrame>>,
    pub(super) timers: Timers,
    pub(super) config: &'c Config,
}

impl<'c, 'q, S> Connection<'c, 'q, S> {
    /// Sets a connection up. Not `async`, so that none of its temporaries (the link) take room in
    /// every connection's task.
    pub(super) fn new(io: S, link: Link<'q>, config: &'c Config) -> (Self, Session) {
        let Link {
            role,
            mut session,
            outgoing,
            read_ahead,
            shutdown,
            shutdown_frame,
            forced_close,
            compression,
        } = link;
        session.set_compression(compression);
        let server = role == Role::Server;
        // Each side inflates what the other compressed, with the other's window and takeover.
        let (inflate, deflate) = match compression {
            Some(agreed) if server => (
                Some((
                    agreed.client_max_window_bits,
                    agreed.client_no_context_takeover,
                )),
                Some((
                    agreed.server_max_window_bits,
                    agreed.server_no_context_takeover,
                    config.deflate.threshold,
                )),
            ),
            Some(agreed) => (
                Some((
                    agreed.server_max_window_bits,
                    agreed.server_no_context_takeover,
                )),
                Some((
                    agreed.client_max_window_bits,
                    agreed.client_no_context_takeover,
                    config.deflate.threshold,
                )),
            ),
            None => (None, None),
        };
        let connection = Connection {
            io,
            reader: Reader::new(config, server, read_ahead, inflate),
            writer: Writer::new(!server, config.write_buffer_size, deflate),
            role,
            outgoing,
            flush_pending: false,
            write_blocked: false,
            reads_since_flush: 0,
            closing: None,
            shutdown,
            shutdown_frame,
            forced_close: Some(forced_close),
            timers: Timers::new(config),
            config,
        };
        (connection, session)
    }
}

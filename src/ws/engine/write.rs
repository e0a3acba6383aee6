//! Write batching: queued messages go into tungstenite's buffer and reach the socket in one flush.
//!
//! Nothing more is taken from the queue while a flush is blocked, so a peer that reads slowly
//! fills the bounded queue (and so makes the handler wait) instead of growing a buffer. A batch
//! is at most [`MAX_BATCH`] messages, so a busy queue cannot starve the reader.

use std::io;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::Connection;
use super::end::{End, close_frame, end_for};
use super::io::SyncIo;
use crate::ws::message::CloseCode;
use crate::ws::session::Outgoing;

/// Outgoing messages encoded per batch before the batch is flushed and the reader gets a turn.
const MAX_BATCH: usize = 256;

impl<'c, 'q, S: AsyncRead + AsyncWrite + Unpin> Connection<'c, 'q, S> {
    /// Moves queued messages into tungstenite's write buffer, without a syscall unless the buffer
    /// passes `write_buffer_size`. Takes nothing while an earlier flush is still blocked, which is
    /// what keeps a slow reader from growing that buffer. Returns whether anything was taken.
    pub(super) fn drain_queue(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
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
    pub(super) fn watch_queue(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
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
        crate::metrics::ws_message_sent(message.len());
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
    pub(super) fn poll_write(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
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
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
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

    pub(super) fn send_ping(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
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
}

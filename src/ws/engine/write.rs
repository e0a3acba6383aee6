//! Write batching: queued messages are encoded into the writer's buffer and reach the socket in
//! one flush.
//!
//! Nothing more is taken from the queue while a flush is blocked, so a peer that reads slowly
//! fills the bounded queue (and so makes the handler wait) instead of growing a buffer. A batch
//! is at most [`MAX_BATCH`] messages, so a busy queue cannot starve the reader.

use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::Connection;
use super::end::{End, abnormal, close_frame};
use crate::ws::message::CloseCode;
use crate::ws::session::Outgoing;

/// Outgoing messages encoded per batch before the batch is flushed and the reader gets a turn.
const MAX_BATCH: usize = 256;

impl<'c, 'q, S: AsyncRead + AsyncWrite + Unpin> Connection<'c, 'q, S> {
    /// Encodes queued messages into the write buffer, without a syscall unless the buffer passes
    /// `write_buffer_size`. Takes nothing while an earlier flush is still blocked, which is
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

    /// Encodes one queued entry: a close frame starts the closing handshake, a message goes into
    /// the write buffer. A buffer past `write_buffer_size` is written out at once, and a full
    /// socket marks the writer blocked. Returns whether to stop taking: after a close, or until the
    /// socket drains.
    fn take(&mut self, cx: &mut Context<'_>, message: Outgoing) -> Result<bool, End> {
        match message {
            tungstenite::Message::Close(frame) => {
                let frame = frame.unwrap_or_else(|| close_frame(CloseCode::Normal, ""));
                self.start_close(cx, frame)?;
                return Ok(true);
            }
            tungstenite::Message::Text(text) => {
                crate::metrics::ws_message_sent(text.len());
                self.writer.message(true, text.as_bytes())
            }
            tungstenite::Message::Binary(data) => {
                crate::metrics::ws_message_sent(data.len());
                self.writer.message(false, &data)
            }
            tungstenite::Message::Ping(data) => self.writer.ping(&data),
            tungstenite::Message::Pong(data) => self.writer.pong(data),
            // Nothing in the crate queues raw frames.
            tungstenite::Message::Frame(_) => return Ok(false),
        }
        self.flush_pending = true;
        if self.writer.unwritten() >= self.config.write_buffer_size && !self.poll_flush(cx)? {
            return Ok(true);
        }
        Ok(false)
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

    /// Writes the buffer out and flushes. Returns whether it is empty now.
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Result<bool, End> {
        match self.writer.poll_flush(&mut self.io, cx) {
            Poll::Ready(Ok(())) => {
                self.flush_pending = false;
                self.write_blocked = false;
                self.timers.disarm_write_stall();
                Ok(true)
            }
            Poll::Pending => {
                self.write_blocked = true;
                self.timers.arm_write_stall();
                Ok(false)
            }
            Poll::Ready(Err(error)) => {
                tracing::debug!(%error, "websocket transport error");
                Err(abnormal("transport error"))
            }
        }
    }

    pub(super) fn send_ping(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        self.writer.ping(&[]);
        self.flush_pending = true;
        self.poll_flush(cx).map(drop)
    }
}

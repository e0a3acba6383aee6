//! The waiting phase: what wakes an idle connection, and in which order it is looked at.
//!
//! Between two handler calls the connection waits on five sources: the socket (the next message,
//! with control frames answered on the way), its outgoing queue (messages other tasks send), the
//! server's shutdown signal, a forced close from
//! [`SessionHandle::try_close`](crate::ws::SessionHandle::try_close), and its timers (keepalive,
//! idle, write stall). [`Connection::next_event`] turns whichever fires first into an [`Event`]:
//! a message for the handler, or how the connection ends.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite};
use tungstenite::protocol::CloseFrame;

use super::connection::Connection;
use super::end::{End, abnormal, close_frame};
use super::read::Incoming;
use super::timers::TimerEvent;
use crate::ws::message::{CloseCode, CloseReason, ClosedBy, Message};

/// Messages handled between two flushes at most, so replies to a long burst still leave in
/// bounded time.
const MAX_READS_BEFORE_FLUSH: u32 = 64;

/// What the waiting phase produced.
pub(super) enum Event {
    Message(Message),
    End(End),
}

impl<'c, 'q, S: AsyncRead + AsyncWrite + Unpin> Connection<'c, 'q, S> {
    /// Waiting phase: returns the next message, or how the connection ends.
    pub(super) async fn next_event(&mut self) -> Event {
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
        match self.timers.poll(cx, self.reader.activity, false) {
            Poll::Ready(TimerEvent::SendPing) => {
                if let Err(end) = self.send_ping(cx) {
                    return Poll::Ready(Event::End(end));
                }
                self.writer.idle();
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
            Poll::Pending => {
                // Asleep until the peer or a sender wakes it: nothing needs the compressor's
                // buffers meanwhile.
                self.writer.idle();
                Poll::Pending
            }
        }
    }

    /// Whether a [`SessionHandle::try_close`](crate::ws::SessionHandle::try_close) found the queue
    /// full and asked to end the connection now.
    pub(super) fn poll_forced_close(&mut self, cx: &mut Context<'_>) -> Poll<CloseFrame> {
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
            match self.reader.poll_next(&mut self.io, cx) {
                Poll::Ready(Ok(Incoming::Message(message))) => {
                    crate::metrics::ws_message_received(message.len());
                    self.timers.touch_idle();
                    return Poll::Ready(Ok(message));
                }
                Poll::Ready(Ok(Incoming::Ping(payload))) => {
                    // The pong goes out with the next write (RFC 6455 section 5.5.3: "as soon
                    // as practical").
                    if self.closing.is_none() {
                        self.writer.pong(payload);
                        self.flush_pending = true;
                    }
                }
                Poll::Ready(Ok(Incoming::Pong)) => {}
                Poll::Ready(Ok(Incoming::Close(frame))) => {
                    return Poll::Ready(Err(End::PeerClosed(frame)));
                }
                Poll::Ready(Err(end)) => return Poll::Ready(Err(end)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

//! The closing handshake (RFC 6455 section 7): carrying out an [`End`], bounded by
//! [`Config::close_timeout`](crate::ws::Config::close_timeout).
//!
//! When the peer closed, its close frame is echoed and the server closes TCP first (section
//! 7.1.1). When this side closes, it sends its frame and discards input until the peer's reply.
//! When the peer broke the protocol, the frame is sent, the write side shut down, and input
//! drained for a while (lingering), so the peer reads the close frame rather than a TCP reset.

use std::future::poll_fn;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tungstenite::protocol::CloseFrame;

use super::connection::Connection;
use tungstenite::protocol::Role;

use super::end::End;
use super::read::Incoming;
use crate::ws::message::{CloseCode, CloseReason, ClosedBy};

impl<'c, 'q, S: AsyncRead + AsyncWrite + Unpin> Connection<'c, 'q, S> {
    /// Sends this side's close frame after everything already written, and stops taking messages.
    pub(super) fn start_close(
        &mut self,
        cx: &mut Context<'_>,
        frame: CloseFrame,
    ) -> Result<(), End> {
        self.outgoing.close();
        if self.closing.is_some() {
            return Ok(());
        }
        self.writer.close(Some(&frame));
        self.closing = Some(frame);
        self.flush_pending = true;
        self.poll_flush(cx).map(drop)
    }

    /// Carries out the end of the connection, bounded by `close_timeout`, and says why it ended.
    pub(super) async fn finish(&mut self, end: End) -> CloseReason {
        self.outgoing.connection_ended();
        let close_timeout = self.config.close_timeout;
        match end {
            End::PeerClosed(frame) => {
                // Echo the peer's code (RFC 6455 section 5.5.1), unless this side's close went
                // out first; the server then closes TCP first (section 7.1.1), the client waits
                // a bounded time for it to.
                if self.closing.is_none() {
                    let echo = frame
                        .as_ref()
                        .map(|frame| super::end::close_frame(frame.code, ""));
                    self.writer.close(echo.as_ref());
                    self.closing = echo;
                    self.flush_pending = true;
                }
                let _ =
                    tokio::time::timeout(close_timeout, poll_fn(|cx| self.poll_flush_to_end(cx)))
                        .await;
                if self.role == Role::Client {
                    self.linger(Instant::now() + close_timeout).await;
                }
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
            match self.reader.poll_next(&mut self.io, cx) {
                Poll::Ready(Ok(Incoming::Close(_)) | Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(_)) => continue,
                Poll::Pending => return Poll::Pending,
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

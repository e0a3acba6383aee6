//! Write coalescing for busy HTTP/2 connections: fewer, larger socket writes.
//!
//! hyper's HTTP/2 connection writes out whatever frames are ready each time its task runs. On a
//! connection with many calls in flight, the handlers of the calls that just arrived are still
//! queued behind it, so each write carries the replies of one or two calls, and the client,
//! answered in dribs, sends its next requests in dribs too. grpc-go avoids this by yielding its
//! writer goroutine once before writing a small batch (`loopyWriter`, `minBatchSize` in
//! `internal/transport/controlbuf.go`); [`Coalesce`] does the same for any connection: the first
//! write of a batch yields the task once, so the tasks already woken (handlers finishing their
//! replies) run first, and the write that follows carries their frames too. Frames wait in hyper's
//! own send buffer meanwhile: nothing is copied and no memory is added.
//!
//! Where the runtime polls the connection again as soon as one handler finishes (tokio's
//! multi-threaded scheduler runs the task a handler wakes next, ahead of the other handlers
//! already queued), one yield gathers one reply; so a batch keeps yielding while each turn adds
//! to it, until it reaches [`MIN_BATCH`] or [`MAX_YIELDS`] turns.
//!
//! A yield is only worth its cost (one more poll of the connection) when something else is
//! runnable. On a connection with one call at a time it never is, so a yield that gathered nothing
//! makes the next ones skip yielding, more batches each time (doubling up to
//! [`MAX_SKIP`]), and one that gathered more starts yielding on every batch again.

use std::{
    future::Future,
    io::{self, IoSlice},
    pin::Pin,
    task::{Context, Poll},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Most batches written without yielding after yields that gathered nothing: bounds how long a
/// connection that becomes busy keeps writing one reply at a time.
const MAX_SKIP: u16 = 64;

/// Most yields in one batch (while each gathers more): bounds the latency one batch adds.
const MAX_YIELDS: u8 = 16;

/// Batches at least this large are written at once (bytes): the write is already worth its
/// syscall. grpc-go's `minBatchSize` is 1000 bytes.
const MIN_BATCH: usize = 1000;

/// An I/O stream whose writes yield once per batch; see the [module docs](self).
#[derive(Debug)]
pub(crate) struct Coalesce<Io> {
    io: Io,
    /// Bytes offered when this batch yielded; `None` while the batch has not yielded.
    yielded_at: Option<usize>,
    /// Batches left to write without yielding.
    skip: u16,
    /// What `skip` is reset to after the next yield that gathers nothing.
    next_skip: u16,
    /// Yields so far in this batch, and whether any of them gathered more.
    yields: u8,
    gathered: bool,
}

impl<Io> Coalesce<Io> {
    pub(crate) fn new(io: Io) -> Self {
        Coalesce {
            io,
            yielded_at: None,
            skip: 0,
            next_skip: 1,
            yields: 0,
            gathered: false,
        }
    }

    /// Registers the task to be polled again after the tasks already queued have run.
    fn yield_now(cx: &mut Context<'_>) {
        // tokio's yield: the task is woken once the runtime has run the tasks already queued
        // (the handlers finishing their replies) and polled the I/O driver (more requests read).
        // Its first poll only registers that wake; it need not be kept.
        let mut yielding = std::pin::pin!(tokio::task::yield_now());
        let _ = yielding.as_mut().poll(cx);
    }

    /// Whether a write of `offered` bytes should wait one turn of the scheduler first.
    fn yield_before(&mut self, offered: usize, cx: &mut Context<'_>) -> bool {
        match self.yielded_at {
            // Already yielded in this batch: learn whether it paid off, then write.
            Some(before) => {
                if offered > before {
                    self.gathered = true;
                    // Still small and still growing: on a multi-threaded runtime the task is
                    // polled again as soon as one handler finishes (tokio's LIFO slot runs the
                    // task a handler wakes next, before the other handlers already queued), so
                    // one yield gathers one reply. Keep gathering while each turn adds some.
                    if offered < MIN_BATCH && self.yields < MAX_YIELDS {
                        self.yielded_at = Some(offered);
                        self.yields += 1;
                        Self::yield_now(cx);
                        return true;
                    }
                }
                if self.gathered {
                    self.skip = 0;
                    self.next_skip = 1;
                } else {
                    self.skip = self.next_skip;
                    self.next_skip = (self.next_skip * 2).min(MAX_SKIP);
                }
                false
            }
            None if offered >= MIN_BATCH => false,
            None if self.skip > 0 => {
                self.skip -= 1;
                false
            }
            None => {
                self.yielded_at = Some(offered);
                self.yields = 1;
                self.gathered = false;
                Self::yield_now(cx);
                true
            }
        }
    }

    /// A batch was written: the next write starts a new one. Records the outcome as written if
    /// the batch yielded and nothing was offered again (cannot happen with hyper, which retries
    /// the same write).
    fn batch_written(&mut self) {
        self.yielded_at = None;
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Coalesce<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Coalesce<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.yield_before(buf.len(), cx) {
            return Poll::Pending;
        }
        self.batch_written();
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let offered = bufs.iter().map(|buf| buf.len()).sum();
        if self.yield_before(offered, cx) {
            return Poll::Pending;
        }
        self.batch_written();
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    /// Offers `bytes` as hyper would, then `after_yield` bytes on every retry after a yield as
    /// the re-polled task does (nothing more arrives after the first yield); returns whether the
    /// first offer yielded.
    fn batch(coalesce: &mut Coalesce<()>, bytes: usize, after_yield: usize) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        let yielded = coalesce.yield_before(bytes, &mut cx);
        if yielded {
            let mut retries = 0;
            while coalesce.yield_before(after_yield, &mut cx) {
                retries += 1;
            }
            let most = if after_yield > bytes && after_yield < MIN_BATCH {
                1
            } else {
                0
            };
            assert_eq!(
                retries, most,
                "one more yield only while a yield gathers more"
            );
        }
        coalesce.batch_written();
        yielded
    }

    #[test]
    fn keeps_yielding_while_each_turn_gathers_more_up_to_a_bound() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut coalesce = Coalesce::new(());
        // One reply per turn, as on a multi-threaded runtime: gather until the batch is worth a
        // write.
        let mut offered = 100;
        let mut yields = 0;
        while coalesce.yield_before(offered, &mut cx) {
            yields += 1;
            offered += 100;
        }
        assert_eq!(
            offered, MIN_BATCH,
            "written once it reached the minimum batch"
        );
        assert_eq!(yields, MIN_BATCH / 100 - 1);
        coalesce.batch_written();
        // Tiny replies: the number of turns is bounded however small each addition is.
        let mut offered = 10;
        let mut yields = 0;
        while coalesce.yield_before(offered, &mut cx) {
            yields += 1;
            offered += 1;
        }
        assert_eq!(yields, usize::from(MAX_YIELDS));
        assert!(offered < MIN_BATCH);
    }

    #[test]
    fn yields_once_per_small_batch_while_yielding_gathers_more() {
        let mut coalesce = Coalesce::new(());
        for _ in 0..10 {
            assert!(batch(&mut coalesce, 100, 900));
        }
        // A batch already worth a write goes out at once.
        assert!(!batch(&mut coalesce, MIN_BATCH, MIN_BATCH));
    }

    #[test]
    fn useless_yields_back_off_doubling_and_a_useful_one_resets() {
        let mut coalesce = Coalesce::new(());
        let mut pattern = Vec::new();
        for _ in 0..140 {
            pattern.push(batch(&mut coalesce, 100, 100));
        }
        let yields: Vec<usize> = (0..pattern.len()).filter(|&index| pattern[index]).collect();
        // Yields at 0, then after skipping 1, 2, 4, 8, 16, 32, 64, 64... batches.
        assert_eq!(&yields[..8], &[0, 2, 5, 10, 19, 36, 69, 134]);
        // Busy again: the next yield gathers more, and every batch yields from then on.
        while !batch(&mut coalesce, 100, 500) {}
        assert!(batch(&mut coalesce, 100, 500));
        assert!(batch(&mut coalesce, 100, 500));
    }
}

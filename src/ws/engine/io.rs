//! A blocking-style view of an async stream for tungstenite, valid for one poll.
//!
//! tungstenite's protocol state machine reads and writes through `std::io::Read + Write` and treats
//! `WouldBlock` as "try again later". Lending it the stream together with the current task's
//! [`Context`] turns `Poll::Pending` into `WouldBlock` with the task's waker already registered.
//! Because one task owns the whole connection, a single waker serves both directions; this is why
//! the connection does not go through `tokio_tungstenite::WebSocketStream`, whose split-safe waker
//! proxies cost an allocation-free but non-trivial detour on every poll.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `Read + Write` over an async stream, for the duration of one poll.
pub(crate) struct SyncIo<'a, 'b, S> {
    io: &'a mut S,
    cx: &'a mut Context<'b>,
}

impl<'a, 'b, S> SyncIo<'a, 'b, S> {
    pub(crate) fn new(io: &'a mut S, cx: &'a mut Context<'b>) -> Self {
        SyncIo { io, cx }
    }
}

fn would_block<T>(poll: Poll<io::Result<T>>) -> io::Result<T> {
    match poll {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

impl<S: AsyncRead + Unpin> Read for SyncIo<'_, '_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        would_block(Pin::new(&mut *self.io).poll_read(self.cx, &mut buf))?;
        Ok(buf.filled().len())
    }
}

impl<S: AsyncWrite + Unpin> Write for SyncIo<'_, '_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        would_block(Pin::new(&mut *self.io).poll_write(self.cx, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        would_block(Pin::new(&mut *self.io).poll_flush(self.cx))
    }
}

/// Reads ahead in bulk when the peer sends a lot, and holds no buffer when it does not.
///
/// tungstenite reads at most `read_buffer_size` bytes per call and allocates that buffer for the
/// whole life of the connection, so one size must serve both an idle connection (small, to keep
/// thousands of them cheap) and a 64 KiB message (large, to take it in one syscall). This adapter
/// lets tungstenite's buffer stay small: reads go straight into it while traffic is light, and
/// once a read fills it completely (more is waiting), the next reads take up to [`BULK_READ`] bytes
/// at once into a side buffer that tungstenite then drains by copying. The side buffer is freed
/// as soon as it is empty and the socket has nothing more, so an idle connection holds none.
pub(crate) struct ReadAhead<S> {
    io: S,
    ahead: BytesMut,
    bulk: bool,
}

/// The most a bulk read takes at once.
pub(crate) const BULK_READ: usize = 64 * 1024;

impl<S> ReadAhead<S> {
    pub(crate) fn new(io: S) -> Self {
        ReadAhead {
            io,
            ahead: BytesMut::new(),
            bulk: false,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadAhead<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.ahead.is_empty() && this.bulk {
            this.ahead.reserve(BULK_READ);
            match tokio_util::io::poll_read_buf(Pin::new(&mut this.io), cx, &mut this.ahead) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                Poll::Pending => {
                    // Nothing more for now: give the memory back while the connection waits.
                    this.ahead = BytesMut::new();
                    this.bulk = false;
                    return Poll::Pending;
                }
            }
        }
        if !this.ahead.is_empty() {
            let take = this.ahead.len().min(buf.remaining());
            buf.put_slice(&this.ahead[..take]);
            this.ahead.advance(take);
            return Poll::Ready(Ok(()));
        }
        let wanted = buf.remaining();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                // A read that filled everything it was offered suggests more is waiting.
                this.bulk = wanted > 0 && buf.filled().len() - before == wanted;
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadAhead<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn small_reads_go_direct_and_bulk_reads_are_released_when_idle() {
        let (mut writer, reader) = tokio::io::duplex(256 * 1024);
        let mut reader = ReadAhead::new(reader);
        writer.write_all(b"hello").await.expect("write");
        let mut small = [0u8; 16];
        let read = reader.read(&mut small).await.expect("read");
        assert_eq!(&small[..read], b"hello");
        assert!(
            !reader.bulk,
            "a read that did not fill the buffer stays direct"
        );

        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        writer.write_all(&big).await.expect("write");
        let mut received = Vec::new();
        let mut chunk = [0u8; 1024];
        while received.len() < big.len() {
            let read = reader.read(&mut chunk).await.expect("read");
            received.extend_from_slice(&chunk[..read]);
            if received.len() > 2048 {
                assert!(reader.bulk || !reader.ahead.is_empty() || received.len() == big.len());
            }
        }
        assert_eq!(received, big);
        // Drained, and the next read would wait: the side buffer is gone.
        let pending = futures::FutureExt::now_or_never(reader.read(&mut chunk));
        assert!(pending.is_none());
        assert_eq!(reader.ahead.capacity(), 0);
    }
}

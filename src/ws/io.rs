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

//! The write side of the codec: frames encoded into one buffer, written with as few syscalls as
//! the socket allows.
//!
//! Every message goes out as one frame (no fragmentation on send), masked on the client side with
//! a fresh random key (RFC 6455 section 5.3) and compressed when permessage-deflate was agreed and
//! the message reaches the threshold (RFC 7692 section 6.1: RSV1 set on compressed messages only).
//! A pong to a ping goes into the same buffer, except while the buffer is backed up: then only
//! the latest pong waits (section 5.5.3 allows answering only the most recent ping), so a peer
//! that pings without reading cannot grow it.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tungstenite::protocol::CloseFrame;

use super::frame::{self, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};

/// Capacity kept after a flush; a buffer grown past it for a large message is released.
const KEEP_CAPACITY: usize = 4 * 1024;

pub(super) struct Writer {
    buf: Vec<u8>,
    /// Bytes at the front of `buf` already on the socket.
    written: usize,
    /// Clients mask every frame.
    mask: bool,
    /// A pong that waits for the buffer to drain.
    pending_pong: Option<Bytes>,
    /// Above this many unwritten bytes a pong waits instead of joining the buffer.
    limit: usize,
    #[cfg(feature = "deflate")]
    deflater: Option<(crate::ws::deflate::Deflater, usize)>,
}

impl Writer {
    /// `deflate`: the window bits, context-takeover setting and threshold of this side's
    /// compressor, when permessage-deflate was agreed.
    pub(super) fn new(mask: bool, limit: usize, deflate: Option<(u8, bool, usize)>) -> Self {
        #[cfg(not(feature = "deflate"))]
        let _ = deflate;
        Writer {
            buf: Vec::new(),
            written: 0,
            mask,
            pending_pong: None,
            limit,
            #[cfg(feature = "deflate")]
            deflater: deflate.map(|(bits, no_context, threshold)| {
                (
                    crate::ws::deflate::Deflater::new(bits, no_context),
                    threshold,
                )
            }),
        }
    }

    /// Bytes waiting for the socket.
    pub(super) fn unwritten(&self) -> usize {
        self.buf.len() - self.written
    }

    /// Encodes one frame with `payload`.
    fn frame(&mut self, opcode: u8, rsv1: bool, payload: &[u8]) {
        let mask = self.mask.then(rand::random::<[u8; 4]>);
        frame::encode_header(&mut self.buf, true, rsv1, opcode, mask, payload.len());
        let start = self.buf.len();
        self.buf.extend_from_slice(payload);
        if let Some(mask) = mask {
            frame::apply_mask(&mut self.buf[start..], mask, 0);
        }
    }

    /// Encodes a data message, compressed when agreed and large enough.
    pub(super) fn message(&mut self, text: bool, payload: &[u8]) {
        let opcode = if text { OP_TEXT } else { OP_BINARY };
        #[cfg(feature = "deflate")]
        if let Some((deflater, threshold)) = &mut self.deflater
            && payload.len() >= *threshold
        {
            let compressed = deflater.deflate(payload);
            let mask = self.mask.then(rand::random::<[u8; 4]>);
            frame::encode_header(&mut self.buf, true, true, opcode, mask, compressed.len());
            let start = self.buf.len();
            self.buf.extend_from_slice(compressed);
            if let Some(mask) = mask {
                frame::apply_mask(&mut self.buf[start..], mask, 0);
            }
            return;
        }
        self.frame(opcode, false, payload);
    }

    pub(super) fn ping(&mut self, payload: &[u8]) {
        self.frame(OP_PING, false, payload);
    }

    /// Answers a ping, or keeps the answer for later while the buffer is backed up.
    pub(super) fn pong(&mut self, payload: Bytes) {
        if self.unwritten() > self.limit {
            self.pending_pong = Some(payload);
        } else {
            self.frame(OP_PONG, false, &payload);
        }
    }

    /// Encodes a close frame (`None`: one without a code, answering a close that had none).
    pub(super) fn close(&mut self, frame: Option<&CloseFrame>) {
        let mut payload = Vec::new();
        if let Some(frame) = frame {
            frame::close_payload(frame, &mut payload);
        }
        self.frame(OP_CLOSE, false, &payload);
    }

    /// Writes everything buffered, then flushes the stream.
    pub(super) fn poll_flush<S: AsyncWrite + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            while self.written < self.buf.len() {
                match Pin::new(&mut *io).poll_write(cx, &self.buf[self.written..]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(written)) => self.written += written,
                    Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            self.buf.clear();
            self.written = 0;
            match self.pending_pong.take() {
                Some(payload) => self.frame(OP_PONG, false, &payload),
                None => break,
            }
        }
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        }
        Pin::new(&mut *io).poll_flush(cx)
    }

    /// The connection goes to sleep: free what is only needed while messages go out.
    pub(super) fn idle(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = Vec::new();
        }
        #[cfg(feature = "deflate")]
        if let Some((deflater, _)) = &mut self.deflater {
            deflater.idle();
        }
    }
}

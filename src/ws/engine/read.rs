//! The read side of the codec: frames from the socket into one buffer, messages out.
//!
//! Bytes are read straight into a [`BytesMut`]; a complete frame is unmasked in place and split
//! off, so an unfragmented message reaches the handler as a view of the very bytes that were read
//! (no copy, no allocation of its own). Fragmented and compressed messages are assembled in a
//! buffer of their own.
//!
//! Every check of RFC 6455 section 5 happens here, as early as the bytes allow: a header is
//! checked before its payload is read (a too-large frame gets 1009 before a byte of it is
//! buffered), and text is validated as it arrives, fragment by fragment and even read by read
//! within one frame, so invalid UTF-8 gets 1007 at the first piece that has it (Autobahn 6.4.x
//! strict). Compressed messages (RFC 7692) are inflated frame by frame in bounded steps against
//! `max_message_size`, so a small frame that inflates past the limit is stopped within 32 KiB of
//! it.
//!
//! The buffer is sized to the traffic: `read_buffer_size` while messages are small, up to 64 KiB
//! per read while a large frame arrives, and released whenever the connection has read everything
//! and waits. What the buffers hold beyond a 64 KiB allowance is charged to the
//! server's [`MemoryBudget`](crate::ws::MemoryBudget).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncRead;
use tungstenite::Utf8Bytes;
use tungstenite::protocol::CloseFrame;

use super::budget::Charge;
use super::end::{End, abnormal, close_frame};
use super::frame::{self, Header, OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT};
use crate::ws::Config;
use crate::ws::message::{CloseCode, Message};

/// The most one read asks for while a large frame arrives.
pub(super) const BULK_READ: usize = 64 * 1024;

/// What the reader produced.
pub(super) enum Incoming {
    Message(Message),
    Ping(Bytes),
    Pong,
    Close(Option<CloseFrame>),
}

/// A frame whose header has been read and whose payload is still arriving.
#[derive(Clone, Copy)]
struct Pending {
    header: Header,
    header_len: usize,
    /// Payload bytes already unmasked (and validated, for uncompressed text).
    checked: usize,
}

/// A fragmented or compressed message being put together.
struct Assembly {
    text: bool,
    compressed: bool,
    data: BytesMut,
}

pub(super) struct Reader {
    buf: BytesMut,
    pending: Option<Pending>,
    assembly: Option<Assembly>,
    /// Validates the text message in progress.
    utf8: frame::Utf8Validator,
    /// Whether the message in progress is uncompressed text (validated as it arrives).
    checking_text: bool,
    /// Servers read masked frames only, clients unmasked only (RFC 6455 section 5.1).
    expect_mask: bool,
    max_frame: usize,
    max_message: usize,
    read_buffer_size: usize,
    #[cfg(feature = "deflate")]
    inflater: Option<crate::ws::deflate::Inflater>,
    charge: Charge,
    /// Reads that returned data, for keepalive: a large message arriving slowly is activity too.
    pub(super) activity: u64,
}

fn protocol_error(reason: &'static str) -> End {
    End::Fail(close_frame(CloseCode::Protocol, reason))
}

fn too_big(reason: &'static str) -> End {
    End::Fail(close_frame(CloseCode::Size, reason))
}

fn invalid_utf8() -> End {
    End::Fail(close_frame(CloseCode::Invalid, "invalid utf-8"))
}

fn over_budget() -> End {
    tracing::warn!("websocket memory budget used up; refusing a message with 1013");
    End::Fail(close_frame(
        CloseCode::Again,
        "server memory budget used up, try again later",
    ))
}

impl Reader {
    /// `read_ahead`: bytes that arrived with the HTTP head. `inflate`: the window bits and
    /// context-takeover setting of the peer's compressor, when permessage-deflate was agreed.
    pub(super) fn new(
        config: &Config,
        expect_mask: bool,
        read_ahead: Vec<u8>,
        inflate: Option<(u8, bool)>,
    ) -> Self {
        #[cfg(not(feature = "deflate"))]
        let _ = inflate;
        Reader {
            buf: BytesMut::from(&read_ahead[..]),
            pending: None,
            assembly: None,
            utf8: frame::Utf8Validator::default(),
            checking_text: false,
            expect_mask,
            max_frame: config.max_frame_size,
            max_message: config.max_message_size,
            read_buffer_size: config.read_buffer_size.max(256),
            #[cfg(feature = "deflate")]
            inflater: inflate
                .map(|(bits, no_context)| crate::ws::deflate::Inflater::new(bits, no_context)),
            charge: Charge::new(config.memory_budget.clone()),
            activity: 0,
        }
    }

    /// Whether compressed messages (RSV1) are allowed.
    fn compression(&self) -> bool {
        #[cfg(feature = "deflate")]
        {
            self.inflater.is_some()
        }
        #[cfg(not(feature = "deflate"))]
        {
            false
        }
    }

    /// The next message or control frame.
    pub(super) fn poll_next<S: AsyncRead + Unpin>(
        &mut self,
        io: &mut S,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Incoming, End>> {
        loop {
            if let Some(incoming) = self.decode()? {
                if matches!(incoming, Incoming::Message(_)) {
                    // The message left; what remains is (at most) the next frame's start.
                    self.hold(0)?;
                }
                return Poll::Ready(Ok(incoming));
            }
            // Room for the rest of a large frame (up to one bulk read), else for small frames.
            let (room, wanted) = match self.pending {
                Some(pending) => {
                    let missing = pending.header_len + pending.header.len as usize - self.buf.len();
                    let bulk = missing.min(BULK_READ);
                    (bulk.max(self.read_buffer_size), bulk)
                }
                None => (self.read_buffer_size, self.read_buffer_size / 4),
            };
            if self.buf.capacity() - self.buf.len() < wanted.max(1) {
                self.hold(room)?;
                self.buf.reserve(room);
            }
            match tokio_util::io::poll_read_buf(Pin::new(&mut *io), cx, &mut self.buf) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(abnormal("closed without a close frame")));
                }
                Poll::Ready(Ok(_)) => self.activity += 1,
                Poll::Ready(Err(error)) => {
                    tracing::debug!(%error, "websocket transport error");
                    return Poll::Ready(Err(abnormal("transport error")));
                }
                Poll::Pending => {
                    self.idle();
                    return Poll::Pending;
                }
            }
        }
    }

    /// Charges the budget for what is held, plus `more` bytes about to be read.
    fn hold(&mut self, more: usize) -> Result<(), End> {
        let assembled = self.assembly.as_ref().map_or(0, |a| a.data.len());
        if self.charge.hold(self.buf.capacity() + assembled + more) {
            Ok(())
        } else {
            Err(over_budget())
        }
    }

    /// The connection has nothing more to read for now: give back what it need not keep.
    fn idle(&mut self) {
        // An idle connection holds no read buffer: the next read allocates one again, which
        // costs one allocation per wake-up, not per message.
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
        #[cfg(feature = "deflate")]
        if self.assembly.is_none()
            && let Some(inflater) = &mut self.inflater
        {
            inflater.idle();
        }
        let _ = self.hold(0);
    }

    /// Decodes what the buffer holds: a message or control frame, or `None` for more bytes.
    fn decode(&mut self) -> Result<Option<Incoming>, End> {
        loop {
            let pending = match self.pending {
                Some(pending) => pending,
                None => {
                    let Some((header, header_len)) = frame::parse(&self.buf)
                        .map_err(|frame::Violation(why)| protocol_error(why))?
                    else {
                        return Ok(None);
                    };
                    self.check(&header)?;
                    let pending = Pending {
                        header,
                        header_len,
                        checked: 0,
                    };
                    self.pending = Some(pending);
                    pending
                }
            };
            let len = pending.header.len as usize;
            let total = pending.header_len + len;
            if self.buf.len() < total {
                self.check_early(pending)?;
                return Ok(None);
            }
            self.pending = None;
            let mut payload = self.buf.split_to(total);
            payload.advance(pending.header_len);
            if let Some(mask) = pending.header.mask {
                frame::apply_mask(&mut payload[pending.checked..], mask, pending.checked);
            }
            if let Some(incoming) = self.frame(pending.header, pending.checked, payload)? {
                return Ok(Some(incoming));
            }
        }
    }

    /// The checks a header gets against the connection's state, before its payload is read.
    fn check(&mut self, header: &Header) -> Result<(), End> {
        if header.mask.is_some() != self.expect_mask {
            return Err(protocol_error(if self.expect_mask {
                "unmasked client frame"
            } else {
                "masked server frame"
            }));
        }
        let len = usize::try_from(header.len).unwrap_or(usize::MAX);
        if len > self.max_frame {
            return Err(too_big("frame too big"));
        }
        match header.opcode {
            OP_TEXT | OP_BINARY => {
                if self.assembly.is_some() {
                    return Err(protocol_error("new message inside a fragmented one"));
                }
                if header.rsv1 && !self.compression() {
                    return Err(protocol_error("reserved bit set"));
                }
                if !header.rsv1 && len > self.max_message {
                    return Err(too_big("message too big"));
                }
                self.checking_text = header.opcode == OP_TEXT && !header.rsv1;
                if header.opcode == OP_TEXT {
                    self.utf8 = frame::Utf8Validator::default();
                }
            }
            OP_CONTINUATION => {
                let Some(assembly) = &self.assembly else {
                    return Err(protocol_error("continuation without a message"));
                };
                if header.rsv1 {
                    return Err(protocol_error("reserved bit set on a continuation"));
                }
                if !assembly.compressed
                    && assembly.data.len().saturating_add(len) > self.max_message
                {
                    return Err(too_big("message too big"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Unmasks and validates the part of an uncompressed text frame that has arrived, so invalid
    /// UTF-8 fails before the frame completes.
    fn check_early(&mut self, mut pending: Pending) -> Result<(), End> {
        let is_data = !pending.header.is_control();
        let arrived = self.buf.len() - pending.header_len;
        if !is_data || !self.checking_text || arrived <= pending.checked {
            return Ok(());
        }
        let piece =
            &mut self.buf[pending.header_len + pending.checked..pending.header_len + arrived];
        if let Some(mask) = pending.header.mask {
            frame::apply_mask(piece, mask, pending.checked);
        }
        self.utf8.feed(piece).map_err(|()| invalid_utf8())?;
        pending.checked = arrived;
        self.pending = Some(pending);
        Ok(())
    }

    /// Handles one complete frame; `checked` bytes of its payload were validated on arrival.
    fn frame(
        &mut self,
        header: Header,
        checked: usize,
        payload: BytesMut,
    ) -> Result<Option<Incoming>, End> {
        match header.opcode {
            OP_PING => return Ok(Some(Incoming::Ping(payload.freeze()))),
            OP_PONG => return Ok(Some(Incoming::Pong)),
            OP_CLOSE => {
                return frame::parse_close(&payload)
                    .map(|frame| Some(Incoming::Close(frame)))
                    .map_err(|(code, reason)| End::Fail(close_frame(code, reason)));
            }
            _ => {}
        }
        if header.opcode != OP_CONTINUATION {
            let text = header.opcode == OP_TEXT;
            if header.fin && !header.rsv1 {
                // The common case: one frame, one message, the bytes as read.
                let payload = payload.freeze();
                return if text {
                    Utf8Bytes::try_from(payload)
                        .map(|text| Some(Incoming::Message(Message::Text(text))))
                        .map_err(|_| invalid_utf8())
                } else {
                    Ok(Some(Incoming::Message(Message::Binary(payload))))
                };
            }
            self.assembly = Some(Assembly {
                text,
                compressed: header.rsv1,
                data: BytesMut::new(),
            });
        }
        self.append(header.fin, checked, &payload)?;
        if !header.fin {
            return Ok(None);
        }
        let Some(assembly) = self.assembly.take() else {
            return Err(protocol_error("continuation without a message"));
        };
        let data = assembly.data.freeze();
        if assembly.text {
            if !self.utf8.is_complete() {
                return Err(invalid_utf8());
            }
            Utf8Bytes::try_from(data)
                .map(|text| Some(Incoming::Message(Message::Text(text))))
                .map_err(|_| invalid_utf8())
        } else {
            Ok(Some(Incoming::Message(Message::Binary(data))))
        }
    }

    /// Adds one data frame's payload to the message being assembled.
    fn append(&mut self, last: bool, checked: usize, payload: &[u8]) -> Result<(), End> {
        let Some(assembly) = &mut self.assembly else {
            return Err(protocol_error("continuation without a message"));
        };
        if assembly.compressed {
            return self.inflate(last, payload);
        }
        if assembly.text {
            self.utf8
                .feed(&payload[checked..])
                .map_err(|()| invalid_utf8())?;
        }
        let held = self.buf.capacity() + assembly.data.len() + payload.len();
        if !self.charge.hold(held) {
            return Err(over_budget());
        }
        assembly.data.extend_from_slice(payload);
        Ok(())
    }

    #[cfg(feature = "deflate")]
    fn inflate(&mut self, last: bool, payload: &[u8]) -> Result<(), End> {
        use crate::ws::deflate::InflateError;
        let (Some(assembly), Some(inflater)) = (&mut self.assembly, &mut self.inflater) else {
            return Err(protocol_error("reserved bit set"));
        };
        let before = assembly.data.len();
        let base = self.buf.capacity();
        let charge = &mut self.charge;
        let mut refused = false;
        let mut grow = |size: usize| {
            let ok = charge.hold(base + size);
            refused |= !ok;
            ok
        };
        let result = inflater.inflate(
            payload,
            last,
            &mut assembly.data,
            self.max_message,
            &mut grow,
        );
        match result {
            Ok(()) => {}
            Err(InflateError::TooBig) if refused => return Err(over_budget()),
            Err(InflateError::TooBig) => return Err(too_big("message too big")),
            Err(InflateError::Corrupt) => {
                return Err(protocol_error("invalid compressed data"));
            }
        }
        if assembly.text {
            self.utf8
                .feed(&assembly.data[before..])
                .map_err(|()| invalid_utf8())?;
        }
        Ok(())
    }

    #[cfg(not(feature = "deflate"))]
    fn inflate(&mut self, _last: bool, _payload: &[u8]) -> Result<(), End> {
        Err(protocol_error("reserved bit set"))
    }
}

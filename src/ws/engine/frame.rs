//! The WebSocket frame format (RFC 6455 section 5.2) as the engine reads and writes it: header
//! parsing with every check the RFC asks of a receiver, header encoding, masking, incremental
//! UTF-8 validation and close-frame payloads. Pure functions, no I/O.
//!
//! The engine has its own codec rather than tungstenite's protocol context so that it can take
//! RSV1 (permessage-deflate, RFC 7692), validate text as it arrives (a message whose UTF-8 breaks
//! in its first fragment fails there, not when it completes), count the bytes it holds against a
//! server-wide budget, and hand the handler the very bytes it read (unmasked in place).

use tungstenite::Utf8Bytes;
use tungstenite::protocol::CloseFrame;

use crate::ws::message::CloseCode;

pub(super) const OP_CONTINUATION: u8 = 0x0;
pub(super) const OP_TEXT: u8 = 0x1;
pub(super) const OP_BINARY: u8 = 0x2;
pub(super) const OP_CLOSE: u8 = 0x8;
pub(super) const OP_PING: u8 = 0x9;
pub(super) const OP_PONG: u8 = 0xA;

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub(super) fin: bool,
    /// RSV1: "compressed" under permessage-deflate (RFC 7692 section 6).
    pub(super) rsv1: bool,
    pub(super) opcode: u8,
    pub(super) mask: Option<[u8; 4]>,
    pub(super) len: u64,
}

impl Header {
    pub(super) fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }
}

/// A header that breaks RFC 6455 section 5.2 regardless of state (close 1002).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Violation(pub(super) &'static str);

/// Parses a header at the start of `buf`. `Ok(None)` when more bytes are needed; otherwise the
/// header and its length. Checks what needs no connection state: RSV2/RSV3 clear, a known opcode,
/// control frames final and at most 125 bytes (section 5.5), the 64-bit length's top bit clear.
pub(super) fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, Violation> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    let fin = first & 0x80 != 0;
    let rsv1 = first & 0x40 != 0;
    if first & 0x30 != 0 {
        return Err(Violation("reserved bits set"));
    }
    let opcode = first & 0x0F;
    if !matches!(
        opcode,
        OP_CONTINUATION | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(Violation("reserved opcode"));
    }
    let masked = second & 0x80 != 0;
    // Control frames are checked on their first two bytes (RFC 6455 section 5.5).
    if opcode & 0x8 != 0 {
        if !fin {
            return Err(Violation("fragmented control frame"));
        }
        if second & 0x7F > 125 {
            return Err(Violation("control frame longer than 125 bytes"));
        }
        if rsv1 {
            return Err(Violation("reserved bit set on a control frame"));
        }
    }
    let (len, mut at) = match second & 0x7F {
        126 => {
            let Some(bytes) = buf.get(2..4) else {
                return Ok(None);
            };
            (u64::from(u16::from_be_bytes([bytes[0], bytes[1]])), 4)
        }
        127 => {
            let Some(bytes) = buf.get(2..10) else {
                return Ok(None);
            };
            let mut array = [0u8; 8];
            array.copy_from_slice(bytes);
            let len = u64::from_be_bytes(array);
            if len >> 63 != 0 {
                return Err(Violation("frame length with the top bit set"));
            }
            (len, 10)
        }
        len => (u64::from(len), 2),
    };
    let mask = if masked {
        let Some(bytes) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([bytes[0], bytes[1], bytes[2], bytes[3]])
    } else {
        None
    };
    let header = Header {
        fin,
        rsv1,
        opcode,
        mask,
        len,
    };
    Ok(Some((header, at)))
}

/// Appends a header to `out`.
pub(super) fn encode_header(
    out: &mut Vec<u8>,
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    let first = (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode;
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    out.push(first);
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(mask_bit | 126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if let Some(mask) = mask {
        out.extend_from_slice(&mask);
    }
}

/// XORs `buf` with `mask` (RFC 6455 section 5.3), `offset` bytes into the payload. Eight bytes at
/// a time, which the compiler vectorises further.
pub(super) fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut mask = mask;
    mask.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (byte, key) in chunks.into_remainder().iter_mut().zip(mask.iter().cycle()) {
        *byte ^= key;
    }
}

/// UTF-8 validation across fragment and read boundaries: fails at the first byte that cannot
/// start or continue a valid sequence (RFC 6455 section 8.1, "fail fast"), and remembers an
/// incomplete sequence at the end of one piece until the next arrives.
#[derive(Debug, Default)]
pub(super) struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// Validates the next piece; `Err` as soon as the text cannot be valid any more.
    pub(super) fn feed(&mut self, mut piece: &[u8]) -> Result<(), ()> {
        while self.pending_len > 0 {
            let Some((&byte, rest)) = piece.split_first() else {
                return Ok(());
            };
            piece = rest;
            self.pending[usize::from(self.pending_len)] = byte;
            self.pending_len += 1;
            match std::str::from_utf8(&self.pending[..usize::from(self.pending_len)]) {
                Ok(_) => self.pending_len = 0,
                Err(error) if error.error_len().is_some() => return Err(()),
                Err(_) => {}
            }
        }
        match std::str::from_utf8(piece) {
            Ok(_) => Ok(()),
            Err(error) if error.error_len().is_some() => Err(()),
            Err(error) => {
                let tail = &piece[error.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Whether the text ended on a character boundary.
    pub(super) fn is_complete(&self) -> bool {
        self.pending_len == 0
    }
}

/// What a close frame's payload says (RFC 6455 section 5.5.1): no code, or a code and a reason.
/// `Err` with the close code to fail with: 1002 for a one-byte payload or a code that must not be
/// sent (section 7.4), 1007 for a reason that is not UTF-8.
pub(super) fn parse_close(payload: &[u8]) -> Result<Option<CloseFrame>, (CloseCode, &'static str)> {
    match payload {
        [] => Ok(None),
        [_] => Err((CloseCode::Protocol, "one-byte close payload")),
        [high, low, reason @ ..] => {
            let code = CloseCode::from(u16::from_be_bytes([*high, *low]));
            if !code.is_allowed() {
                return Err((CloseCode::Protocol, "invalid close code"));
            }
            let reason = std::str::from_utf8(reason)
                .map_err(|_| (CloseCode::Invalid, "close reason is not utf-8"))?;
            Ok(Some(CloseFrame {
                code,
                reason: Utf8Bytes::from(reason),
            }))
        }
    }
}

/// The payload of a close frame: code and reason, or nothing for 1005 (which is never sent).
pub(super) fn close_payload(frame: &CloseFrame, out: &mut Vec<u8>) {
    if frame.code == CloseCode::Status {
        return;
    }
    out.extend_from_slice(&u16::from(frame.code).to_be_bytes());
    out.extend_from_slice(frame.reason.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_every_length_form() {
        for (len, header_len) in [(0usize, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut out = Vec::new();
                encode_header(&mut out, true, true, OP_BINARY, mask, len);
                let expected = header_len + if mask.is_some() { 4 } else { 0 };
                assert_eq!(out.len(), expected);
                let (header, used) = parse(&out).expect("valid").expect("complete");
                assert_eq!(used, expected);
                assert_eq!(header.len, len as u64);
                assert_eq!(header.mask, mask);
                assert!(header.fin && header.rsv1);
                // Every shorter prefix asks for more.
                for cut in 0..out.len() {
                    assert_eq!(parse(&out[..cut]), Ok(None));
                }
            }
        }
    }

    #[test]
    fn header_violations() {
        assert!(parse(&[0x81 | 0x20, 0x80]).is_err(), "RSV2");
        assert!(parse(&[0x81 | 0x10, 0x80]).is_err(), "RSV3");
        assert!(parse(&[0x83, 0x80]).is_err(), "opcode 3");
        assert!(parse(&[0x8B, 0x80]).is_err(), "opcode 11");
        assert!(parse(&[0x09, 0x80]).is_err(), "fragmented ping");
        assert!(parse(&[0x89, 0xFE, 0, 126]).is_err(), "ping of 126 bytes");
        assert!(parse(&[0xC9, 0x80]).is_err(), "compressed ping");
        let mut huge = vec![0x82, 0x7F];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(parse(&huge).is_err(), "64-bit length with the top bit set");
    }

    #[test]
    fn masking_at_any_offset_matches_the_byte_loop() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let data: Vec<u8> = (0..100u8).collect();
        let expected: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4])
            .collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        assert_eq!(whole, expected);
        // In pieces at odd offsets, as a frame arriving in several reads is unmasked.
        let mut pieces = data.clone();
        let (a, rest) = pieces.split_at_mut(3);
        let (b, c) = rest.split_at_mut(30);
        apply_mask(a, mask, 0);
        apply_mask(b, mask, 3);
        apply_mask(c, mask, 33);
        assert_eq!(pieces, expected);
    }

    #[test]
    fn utf8_fails_at_the_first_bad_piece() {
        let text = "κόσμε €𝄞".as_bytes();
        // Split everywhere, including inside multi-byte characters.
        for cut in 0..text.len() {
            let mut validator = Utf8Validator::default();
            assert!(validator.feed(&text[..cut]).is_ok());
            assert!(validator.feed(&text[cut..]).is_ok());
            assert!(validator.is_complete());
        }
        let mut validator = Utf8Validator::default();
        assert!(validator.feed(b"ok \xF0\x9F").is_ok());
        assert!(!validator.is_complete());
        // F4 90 is above U+10FFFF: fails on the piece that brings the 90.
        let mut validator = Utf8Validator::default();
        assert!(validator.feed(b"\xF4").is_ok());
        assert!(validator.feed(b"\x90\x80\x80").is_err());
        let mut validator = Utf8Validator::default();
        assert!(
            validator
                .feed(b"\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5\xED\xA0\x80")
                .is_err()
        );
    }

    #[test]
    fn close_payloads() {
        assert_eq!(parse_close(&[]), Ok(None));
        assert_eq!(parse_close(&[3]).unwrap_err().0, CloseCode::Protocol);
        let ok = parse_close(&[0x03, 0xE8, b'h', b'i'])
            .expect("valid")
            .expect("code");
        assert_eq!(ok.code, CloseCode::Normal);
        assert_eq!(ok.reason.as_str(), "hi");
        for bad in [0u16, 999, 1004, 1005, 1006, 1016, 2999, 5000] {
            let bytes = bad.to_be_bytes();
            assert_eq!(
                parse_close(&bytes).unwrap_err().0,
                CloseCode::Protocol,
                "code {bad}"
            );
        }
        assert_eq!(
            parse_close(&[0x03, 0xE8, 0xFF]).unwrap_err().0,
            CloseCode::Invalid
        );
        let mut out = Vec::new();
        close_payload(
            &CloseFrame {
                code: CloseCode::Away,
                reason: Utf8Bytes::from_static("bye"),
            },
            &mut out,
        );
        assert_eq!(out, [0x03, 0xE9, b'b', b'y', b'e']);
    }
}

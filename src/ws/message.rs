//! The data a handler sees: messages in and out, and why a connection closed.
//!
//! Handlers only ever see data messages. Control frames (ping, pong, close) are the connection's
//! business: pings are answered, pongs feed the keepalive, and a close frame ends the connection and
//! reaches [`Handler::on_close`](crate::ws::Handler::on_close) as a [`CloseReason`].
//!
//! Payloads are [`Bytes`] and [`Utf8Bytes`], reference-counted views into the buffer the frame was
//! read into, so echoing or broadcasting a message never copies its payload.

use std::fmt;

use bytes::Bytes;
pub use tungstenite::Utf8Bytes;
pub use tungstenite::protocol::frame::coding::CloseCode;

/// One complete WebSocket data message (fragments already reassembled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message; its payload is valid UTF-8 (checked on receipt, RFC 6455 section 8.1).
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Self {
        Message::Text(text.into())
    }

    /// A text message pointing at static text, without copying or allocating.
    pub const fn from_static(text: &'static str) -> Self {
        Message::Text(Utf8Bytes::from_static(text))
    }

    /// A binary message.
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Message::Binary(data.into())
    }

    /// The payload as text, if this is a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(text) => Some(text.as_str()),
            Message::Binary(_) => None,
        }
    }

    /// The payload bytes, whatever the kind of message.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(data) => data,
        }
    }

    /// The payload, without copying it.
    pub fn into_bytes(self) -> Bytes {
        match self {
            Message::Text(text) => text.into(),
            Message::Binary(data) => data,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this is a text message.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// Whether this is a binary message.
    pub fn is_binary(&self) -> bool {
        matches!(self, Message::Binary(_))
    }
}

/// Copies the text. For a `&'static str` on a hot path, [`Message::from_static`] avoids the copy.
impl From<&str> for Message {
    fn from(text: &str) -> Self {
        Message::Text(Utf8Bytes::from(text))
    }
}

impl From<String> for Message {
    fn from(text: String) -> Self {
        Message::Text(text.into())
    }
}

impl From<Utf8Bytes> for Message {
    fn from(text: Utf8Bytes) -> Self {
        Message::Text(text)
    }
}

impl From<Bytes> for Message {
    fn from(data: Bytes) -> Self {
        Message::Binary(data)
    }
}

impl From<Vec<u8>> for Message {
    fn from(data: Vec<u8>) -> Self {
        Message::Binary(data.into())
    }
}

impl From<Message> for tungstenite::Message {
    fn from(message: Message) -> Self {
        match message {
            Message::Text(text) => tungstenite::Message::Text(text),
            Message::Binary(data) => tungstenite::Message::Binary(data),
        }
    }
}

/// Which side started the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClosedBy {
    /// The peer sent a close frame, or its transport went away.
    Peer,
    /// This side closed: the handler asked for it, a limit or protocol rule was broken, a timeout
    /// fired, or the server shut down.
    Local,
}

/// Why a connection ended, as handed to [`Handler::on_close`](crate::ws::Handler::on_close).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CloseReason {
    /// The close code. A peer close frame without a code reads as 1005
    /// ([`CloseCode::Status`]); a transport that dropped without any close frame as 1006
    /// ([`CloseCode::Abnormal`]).
    pub code: CloseCode,
    /// The reason text from the close frame (empty when there was none).
    pub reason: Utf8Bytes,
    /// Which side started the close.
    pub closed_by: ClosedBy,
}

impl CloseReason {
    /// A close reason.
    pub fn new(code: CloseCode, reason: impl Into<Utf8Bytes>, closed_by: ClosedBy) -> Self {
        CloseReason {
            code,
            reason: reason.into(),
            closed_by,
        }
    }

    /// The close code as its number.
    pub fn code_number(&self) -> u16 {
        self.code.into()
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let by = match self.closed_by {
            ClosedBy::Peer => "peer",
            ClosedBy::Local => "local",
        };
        write!(f, "{} ({by})", u16::from(self.code))?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason.as_str())?;
        }
        Ok(())
    }
}

/// The longest reason a close frame can carry: 125 bytes of control payload minus the 2-byte code
/// (RFC 6455 section 5.5).
pub(crate) const MAX_CLOSE_REASON: usize = 123;

/// Cuts `reason` to fit a close frame, on a character boundary.
pub(crate) fn fit_close_reason(reason: Utf8Bytes) -> Utf8Bytes {
    if reason.len() <= MAX_CLOSE_REASON {
        return reason;
    }
    let text = reason.as_str();
    let mut end = MAX_CLOSE_REASON;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Utf8Bytes::from(&text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_close_reason_is_cut_on_a_char_boundary() {
        let long = "é".repeat(100); // 200 bytes
        let cut = fit_close_reason(Utf8Bytes::from(long));
        assert!(cut.len() <= MAX_CLOSE_REASON);
        assert_eq!(cut.len(), 122);
        assert!(cut.as_str().chars().all(|c| c == 'é'));
    }

    #[test]
    fn message_payload_is_shared_not_copied() {
        let data = Bytes::from(vec![7u8; 1024]);
        let message = Message::binary(data.clone());
        assert_eq!(message.into_bytes().as_ptr(), data.as_ptr());
    }
}

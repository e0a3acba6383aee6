//! How a connection ends ([`End`]) and which end each failure leads to.
//!
//! The codec (`read.rs`) fails the connection with the close code RFC 6455 section 7.4.1 gives
//! each protocol failure; a handler's error gets the code [`Error::close_code`] gives it
//! ([`handler_failed`]). What this file adds is the engine's side of the decision: which failures
//! still get a closing handshake ([`End::Close`]), which fail the connection ([`End::Fail`]),
//! and which leave nothing to send ([`End::Abort`], reported as 1006).

use tungstenite::Utf8Bytes;
use tungstenite::protocol::CloseFrame;

use crate::error::Error;
use crate::ws::message::{CloseCode, CloseReason, ClosedBy};

/// How a connection ends, which decides what is still sent and awaited.
#[derive(Debug)]
pub(super) enum End {
    /// The peer sent a close frame (`None`: one without a code); the echo is still to be sent.
    PeerClosed(Option<CloseFrame>),
    /// This side closes with a handshake: send the frame (unless already sent) and wait a bounded
    /// time for the peer's reply.
    Close(CloseFrame),
    /// The peer broke the protocol: send the frame, stop writing, and drain input for a while so the
    /// peer reads the frame instead of a reset (RFC 6455 section 7.1.7, "fail the connection").
    Fail(CloseFrame),
    /// The transport is gone or hopeless: no more I/O.
    Abort(CloseReason),
}

/// The connection ended without a closing handshake: nothing more is sent, and `on_close` sees
/// 1006 (RFC 6455 section 7.1.5), with `reason` saying what happened.
pub(super) fn abnormal(reason: &'static str) -> End {
    End::Abort(CloseReason::new(
        CloseCode::Abnormal,
        Utf8Bytes::from_static(reason),
        ClosedBy::Peer,
    ))
}

/// Maps a hook's error to how the connection ends: a closing handshake with the code
/// [`Error::close_code`] gives (1011 for handler errors and panics), or a plain 1000 when the hook
/// only saw its own connection closing.
pub(super) fn handler_failed(error: Error) -> End {
    match error {
        // The handler only saw that its own connection is going away; not a handler fault.
        Error::ConnectionClosed => End::Close(close_frame(CloseCode::Normal, "")),
        Error::HandlerPanic(panic) => {
            tracing::error!(panic = %panic, "websocket handler panicked; closing its connection with 1011");
            End::Close(close_frame(CloseCode::Error, "handler panicked"))
        }
        error => {
            tracing::warn!(error = %error, source = ?std::error::Error::source(&error), "websocket handler failed; closing with 1011");
            End::Close(close_frame(error.close_code(), "handler error"))
        }
    }
}

/// A close frame with a static reason, so building one allocates nothing.
pub(super) fn close_frame(code: CloseCode, reason: &'static str) -> CloseFrame {
    CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }
}

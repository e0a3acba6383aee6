//! The JSON envelopes of the typed call protocol (see the [module docs](super)).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An error answered to a call: a machine-readable `code` and a human-readable `message`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RpcError {
    /// A short, stable identifier (`bad_request`, `not_found`, ...).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl RpcError {
    /// An error with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        RpcError {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The call could not be understood.
    pub fn bad_request(message: impl Into<String>) -> Self {
        RpcError::new("bad_request", message)
    }

    /// The service failed while handling the call.
    pub fn internal(message: impl Into<String>) -> Self {
        RpcError::new("internal", message)
    }
}

/// `{"id": 7, "call": ...}`
// The whole wire format stays in one place; the calling side only exists with `client`.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
#[derive(Serialize)]
pub(crate) struct CallOut<'a, T> {
    pub(crate) id: u64,
    pub(crate) call: &'a T,
}

/// `{"id": 7, "ok": ...}` or `{"id": 7, "error": ...}`; the id is `null` when a malformed
/// call had none.
#[derive(Serialize)]
pub(crate) struct ReplyOut<'a, T> {
    pub(crate) id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ok: Option<&'a T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<&'a RpcError>,
}

/// `{"push": ...}`
#[derive(Serialize)]
pub(crate) struct PushOut<'a, T> {
    pub(crate) push: &'a T,
}

/// Any incoming envelope, with its payload left unparsed until its kind is known.
// `ok`, `error` and `push` are read by the calling side, which only exists with `client`.
#[cfg_attr(not(feature = "client"), allow(dead_code))]
#[derive(Deserialize)]
pub(crate) struct Incoming<'a> {
    #[serde(default)]
    pub(crate) id: Option<u64>,
    #[serde(borrow, default)]
    pub(crate) call: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) ok: Option<&'a RawValue>,
    #[serde(default)]
    pub(crate) error: Option<RpcError>,
    #[serde(borrow, default)]
    pub(crate) push: Option<&'a RawValue>,
}

//! Subprotocol negotiation: agree with the client on what the messages mean.
//!
//! A client lists the subprotocols it speaks in `Sec-WebSocket-Protocol`; the server answers with
//! one of them (RFC 6455 section 4.2.2). [`ProtocolLayer`] holds the server's list in order of
//! preference and picks the first one the client offered, whatever the client's order, so the
//! server decides which version wins. The choice is [`Session::protocol`] for every later hook.
//!
//! ```
//! use wsgrpc::ws::guard::ProtocolLayer;
//! use wsgrpc::ws::{Handler, HandlerBuilder, Message, Session};
//!
//! /// Answers in the dialect the connection agreed on.
//! struct Versioned;
//!
//! impl Handler for Versioned {
//!     async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
//!         match session.protocol() {
//!             Some("chat.v2") => session.send(message).await,
//!             _ => session.send("upgrade to chat.v2").await,
//!         }
//!     }
//! }
//!
//! let handler = HandlerBuilder::new()
//!     .layer(ProtocolLayer::new(["chat.v2", "chat.v1"]).required(true))
//!     .handler(Versioned);
//! # let _ = handler;
//! ```

use std::sync::Arc;

use http::StatusCode;

use crate::ws::guard::pass_through_after_upgrade;
use crate::ws::{Handler, Layer, Rejection, Upgrade};

/// Negotiates `Sec-WebSocket-Protocol`, choosing the server's most preferred protocol that the
/// client offered.
///
/// # Policy
///
/// - The client offers one or more supported protocols: the server's most preferred is chosen.
/// - The client offers protocols, none supported: refused with `400`. Accepting without a
///   protocol would only move the failure to the client, since browsers and tungstenite fail a
///   connection whose answer lacks a protocol they asked for.
/// - The client offers none: accepted without a protocol, unless [`ProtocolLayer::required`].
///
/// [`Session::protocol`]: crate::ws::Session::protocol
///
/// Default: a client that offers no protocol is accepted without one.
#[derive(Debug, Clone)]
pub struct ProtocolLayer {
    supported: Arc<[String]>,
    required: bool,
}

impl ProtocolLayer {
    /// Speaks `supported`, most preferred first.
    pub fn new<I>(supported: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        ProtocolLayer {
            supported: supported.into_iter().map(Into::into).collect(),
            required: false,
        }
    }

    /// Whether a client that offers no protocol at all is refused with `400` (default `false`).
    #[must_use]
    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// Chooses the protocol for `upgrade`, or refuses it.
    pub fn negotiate(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
        let chosen = self
            .supported
            .iter()
            .find(|supported| {
                upgrade
                    .requested_protocols()
                    .any(|offered| offered == *supported)
            })
            .cloned();
        match chosen {
            Some(protocol) if upgrade.select_protocol(&protocol) => Ok(()),
            _ if !self.required && upgrade.requested_protocols().next().is_none() => Ok(()),
            _ => {
                let body = format!(
                    "no supported subprotocol offered; this endpoint speaks: {}\n",
                    self.supported.join(", ")
                );
                Err(Rejection::new(StatusCode::BAD_REQUEST, body))
            }
        }
    }
}

impl<H> Layer<H> for ProtocolLayer {
    type Handler = Protocol<H>;

    fn layer(&self, inner: H) -> Protocol<H> {
        Protocol::new(inner, self.clone())
    }
}

/// A handler behind subprotocol negotiation; made by [`ProtocolLayer`].
#[derive(Debug, Clone)]
pub struct Protocol<H> {
    inner: H,
    layer: ProtocolLayer,
}

impl<H> Protocol<H> {
    /// `inner` behind the negotiation of `layer`.
    pub fn new(inner: H, layer: ProtocolLayer) -> Self {
        Protocol { inner, layer }
    }

    /// The wrapped handler.
    pub fn get_ref(&self) -> &H {
        &self.inner
    }

    /// Unwraps the handler.
    pub fn into_inner(self) -> H {
        self.inner
    }
}

impl<H: Handler> Handler for Protocol<H> {
    async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
        self.layer.negotiate(upgrade)?;
        self.inner.on_upgrade(upgrade).await
    }

    pass_through_after_upgrade!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    fn upgrade(offered: Option<&str>) -> Upgrade {
        let mut request = Request::get("/ws")
            .header("host", "example.com")
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
        if let Some(offered) = offered {
            request = request.header("sec-websocket-protocol", offered);
        }
        Upgrade::from_request(request.body(()).expect("valid"), None).expect("valid upgrade")
    }

    #[test]
    fn server_preference_wins() {
        let layer = ProtocolLayer::new(["chat.v2", "chat.v1"]);
        let mut offered = upgrade(Some("chat.v1, chat.v2"));
        layer.negotiate(&mut offered).expect("supported");
        assert_eq!(offered.protocol(), Some("chat.v2"));
    }

    #[test]
    fn unsupported_offer_is_refused_and_none_is_optional() {
        let layer = ProtocolLayer::new(["chat.v1"]);
        let refused = layer
            .negotiate(&mut upgrade(Some("mqtt")))
            .expect_err("unsupported");
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
        let mut none = upgrade(None);
        layer.negotiate(&mut none).expect("optional");
        assert_eq!(none.protocol(), None);
        assert!(layer.required(true).negotiate(&mut upgrade(None)).is_err());
    }
}

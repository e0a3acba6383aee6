//! Tracing: one span per connection, with what happened to it when it ends.
//!
//! ```
//! use wsgrpc::ws::layer::TraceLayer;
//! use wsgrpc::ws::{handler_fn, HandlerBuilder, Message, SessionHandle};
//!
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! let handler = HandlerBuilder::new().layer(TraceLayer::new()).handler(echo);
//! # let _ = handler;
//! ```

use tracing::Instrument;
use tracing::field::{Empty, display};

use crate::error::Result;
use crate::ws::{CloseReason, Handler, Layer, Message, Rejection, Session, Upgrade};

/// Wraps handlers in a per-connection span.
///
/// [`TraceLayer`] opens an `INFO` span named `ws` for each connection when it opens, with fields
/// `id`, `peer` and `path`, and runs every inner hook inside it, so whatever the handler logs is
/// tagged with its connection. It emits an `INFO` event when the connection opens and one when it
/// closes, with the close code, reason, which side closed, and the number and total size of the
/// messages received; each message is a `TRACE` event (free unless enabled). Refused upgrades are
/// `DEBUG` events with the status.
///
/// Cost per message: one extensions lookup and a span clone (a reference count on the
/// subscriber's side; nothing at all without a subscriber). No allocation.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer {
    _private: (),
}

impl TraceLayer {
    /// The tracing layer.
    pub fn new() -> Self {
        TraceLayer::default()
    }
}

impl<H> Layer<H> for TraceLayer {
    type Handler = Trace<H>;

    fn layer(&self, inner: H) -> Trace<H> {
        Trace::new(inner)
    }
}

/// A handler whose connections are traced; made by [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct Trace<H> {
    inner: H,
}

impl<H> Trace<H> {
    /// Traces the connections of `inner`.
    pub fn new(inner: H) -> Self {
        Trace { inner }
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

/// The connection's span and counters, kept in its extensions.
struct Traced {
    span: tracing::Span,
    messages: u64,
    bytes: u64,
}

impl<H: Handler> Handler for Trace<H> {
    async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
        let result = self.inner.on_upgrade(upgrade).await;
        if let Err(rejection) = &result {
            tracing::debug!(
                path = upgrade.path(),
                peer = ?upgrade.peer_addr(),
                status = rejection.status().as_u16(),
                "websocket upgrade refused"
            );
        }
        result
    }

    async fn on_open(&self, session: &mut Session) -> Result<()> {
        let span = tracing::info_span!(
            "ws",
            id = session.id().get(),
            peer = Empty,
            path = %session.path()
        );
        if let Some(peer) = session.peer_addr() {
            span.record("peer", display(peer));
        }
        tracing::info!(parent: &span, "websocket connection opened");
        session.extensions_mut().insert(Traced {
            span: span.clone(),
            messages: 0,
            bytes: 0,
        });
        self.inner.on_open(session).instrument(span).await
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> Result<()> {
        let span = match session.extensions_mut().get_mut::<Traced>() {
            Some(traced) => {
                traced.messages += 1;
                traced.bytes += message.len() as u64;
                traced.span.clone()
            }
            // on_open of this layer did not run (it failed further out): trace nothing.
            None => tracing::Span::none(),
        };
        tracing::trace!(parent: &span, len = message.len(), text = message.is_text(), "message");
        self.inner
            .on_message(session, message)
            .instrument(span)
            .await
    }

    async fn on_close(&self, session: &mut Session, reason: CloseReason) {
        let Some(traced) = session.extensions_mut().remove::<Traced>() else {
            return self.inner.on_close(session, reason).await;
        };
        let code = reason.code_number();
        let closed_by = match reason.closed_by {
            crate::ws::ClosedBy::Peer => "peer",
            crate::ws::ClosedBy::Local => "local",
        };
        let reason_text = reason.reason.clone();
        self.inner
            .on_close(session, reason)
            .instrument(traced.span.clone())
            .await;
        tracing::info!(
            parent: &traced.span,
            code,
            reason = reason_text.as_str(),
            closed_by,
            messages = traced.messages,
            bytes = traced.bytes,
            "websocket connection closed"
        );
    }
}

//! A deadline for each message's handling.
//!
//! ```
//! use std::time::Duration;
//! use wsgrpc::ws::layer::TimeoutLayer;
//! use wsgrpc::ws::{handler_fn, HandlerBuilder, Message, SessionHandle};
//!
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! let handler = HandlerBuilder::new()
//!     .layer(TimeoutLayer::new(Duration::from_secs(5)))
//!     .handler(echo);
//! # let _ = handler;
//! ```

use std::future::Future;
use std::time::Duration;

use crate::error::Result;
use crate::ws::{CloseCode, CloseReason, Handler, Layer, Message, Rejection, Session, Upgrade};

/// Bounds how long each message's handling may take.
///
/// While a handler works on a message, its connection reads nothing more from the peer; a handler
/// stuck on a slow database call therefore stalls the connection without anyone noticing.
/// [`TimeoutLayer`] bounds `on_open` and each `on_message`: when the deadline passes, the hook is
/// cancelled and the connection is closed with **1011** and the reason `handler timed out` (the
/// server failed to do its part; RFC 6455 section 7.4.1), logged at `WARN`.
///
/// `on_upgrade` is already bounded by [`Config::handshake_timeout`](crate::ws::Config), and
/// `on_close` by the server's shutdown timeout. The timer lives inside the hook's future: no
/// allocation per message.
#[derive(Debug, Clone, Copy)]
pub struct TimeoutLayer {
    timeout: Duration,
}

impl TimeoutLayer {
    /// Allows `on_open` and each `on_message` at most `timeout`.
    pub fn new(timeout: Duration) -> Self {
        TimeoutLayer { timeout }
    }
}

impl<H> Layer<H> for TimeoutLayer {
    type Handler = Timeout<H>;

    fn layer(&self, inner: H) -> Timeout<H> {
        Timeout::new(inner, self.timeout)
    }
}

/// A handler with a deadline on each message; made by [`TimeoutLayer`].
#[derive(Debug, Clone)]
pub struct Timeout<H> {
    inner: H,
    timeout: Duration,
}

impl<H> Timeout<H> {
    /// Bounds each message's handling by `inner` to `timeout`.
    pub fn new(inner: H, timeout: Duration) -> Self {
        Timeout { inner, timeout }
    }

    /// The wrapped handler.
    pub fn get_ref(&self) -> &H {
        &self.inner
    }

    /// Unwraps the handler.
    pub fn into_inner(self) -> H {
        self.inner
    }

    fn timed_out(&self, session: &Session, hook: &'static str) -> Result<()> {
        tracing::warn!(
            id = %session.id(),
            hook,
            timeout = ?self.timeout,
            "websocket handler timed out; closing with 1011"
        );
        // Non-waiting: the handler may have timed out precisely because the queue is full.
        let _ = session.try_close(CloseCode::Error, "handler timed out");
        Ok(())
    }
}

impl<H: Handler> Handler for Timeout<H> {
    fn on_upgrade(
        &self,
        upgrade: &mut Upgrade,
    ) -> impl Future<Output = Result<(), Rejection>> + Send {
        self.inner.on_upgrade(upgrade)
    }

    async fn on_open(&self, session: &mut Session) -> Result<()> {
        match tokio::time::timeout(self.timeout, self.inner.on_open(session)).await {
            Ok(result) => result,
            Err(_) => self.timed_out(session, "on_open"),
        }
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> Result<()> {
        match tokio::time::timeout(self.timeout, self.inner.on_message(session, message)).await {
            Ok(result) => result,
            Err(_) => self.timed_out(session, "on_message"),
        }
    }

    fn on_close(
        &self,
        session: &mut Session,
        reason: CloseReason,
    ) -> impl Future<Output = ()> + Send {
        self.inner.on_close(session, reason)
    }
}

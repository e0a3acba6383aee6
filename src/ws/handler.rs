//! What an endpoint does with a connection: the [`Handler`] trait and its closure adapter.
//!
//! A handler is shared by every connection it serves (`&self`), so it is `Send + Sync + 'static`;
//! per-connection state lives in the [`Session`]'s extensions. Every hook has a default, so a
//! handler implements only what it cares about. The hooks return `impl Future + Send` (no boxing):
//! a handler written as a named type costs nothing per message.
//!
//! A connection runs its hooks one at a time, in order: `on_upgrade` (before the `101`), `on_open`,
//! `on_message` for each message as it arrives, and `on_close` exactly once at the end (if the
//! connection got as far as `on_open`). While `on_message` runs, the connection reads nothing more
//! from its peer: a handler that waits applies backpressure to the peer, never unbounded buffering.
//!
//! Errors and panics are contained. A hook that returns an error or panics ends only its own
//! connection, with close code 1011; the server keeps serving everyone else.

use std::future::Future;
use std::sync::Arc;

use crate::error::Result;
use crate::ws::{CloseReason, Message, Rejection, Session, SessionHandle, Upgrade};

/// What a WebSocket endpoint does with each connection.
///
/// ```
/// use wsgrpc::ws::{Handler, Message, Session};
///
/// /// Replies with the length of every message it receives.
/// struct Length;
///
/// impl Handler for Length {
///     async fn on_message(&self, session: &mut Session, message: Message) -> wsgrpc::Result<()> {
///         session.send(message.len().to_string()).await
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Runs on the HTTP upgrade request, before the `101` response: refuse with a [`Rejection`]
    /// (an HTTP status and body), choose a subprotocol, or attach values for the session.
    ///
    /// The default accepts every request.
    fn on_upgrade(
        &self,
        upgrade: &mut Upgrade,
    ) -> impl Future<Output = Result<(), Rejection>> + Send {
        let _ = upgrade;
        async { Ok(()) }
    }

    /// Runs once the connection is open, before the first message. An error closes the
    /// connection with 1011.
    fn on_open(&self, session: &mut Session) -> impl Future<Output = Result<()>> + Send {
        let _ = session;
        async { Ok(()) }
    }

    /// Runs for each text or binary message. An error closes the connection with 1011.
    ///
    /// The default ignores the message.
    fn on_message(
        &self,
        session: &mut Session,
        message: Message,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (session, message);
        async { Ok(()) }
    }

    /// Runs once when the connection has ended, with the code and reason it ended with.
    ///
    /// The peer is gone by now: messages sent from here are dropped.
    fn on_close(
        &self,
        session: &mut Session,
        reason: CloseReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (session, reason);
        async {}
    }
}

impl<H: Handler> Handler for Arc<H> {
    fn on_upgrade(
        &self,
        upgrade: &mut Upgrade,
    ) -> impl Future<Output = Result<(), Rejection>> + Send {
        (**self).on_upgrade(upgrade)
    }

    fn on_open(&self, session: &mut Session) -> impl Future<Output = Result<()>> + Send {
        (**self).on_open(session)
    }

    fn on_message(
        &self,
        session: &mut Session,
        message: Message,
    ) -> impl Future<Output = Result<()>> + Send {
        (**self).on_message(session, message)
    }

    fn on_close(
        &self,
        session: &mut Session,
        reason: CloseReason,
    ) -> impl Future<Output = ()> + Send {
        (**self).on_close(session, reason)
    }
}

/// A [`Handler`] made of one closure over each message; see [`handler_fn`].
#[derive(Clone)]
pub struct HandlerFn<F> {
    on_message: F,
}

/// Makes a [`Handler`] from a closure that runs for every message.
///
/// The closure receives a [`SessionHandle`] (a cheap clone: two reference counts) rather than
/// `&mut Session`, so the future it returns can own everything it uses. For lifecycle hooks or
/// per-connection state, implement [`Handler`] on a type instead.
///
/// ```
/// use wsgrpc::ws::{handler_fn, Message, SessionHandle};
///
/// let echo = handler_fn(|session: SessionHandle, message: Message| async move {
///     session.send(message).await
/// });
/// # let _ = echo;
/// ```
pub fn handler_fn<F, Fut>(on_message: F) -> HandlerFn<F>
where
    F: Fn(SessionHandle, Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    HandlerFn { on_message }
}

impl<F, Fut> Handler for HandlerFn<F>
where
    F: Fn(SessionHandle, Message) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    fn on_message(
        &self,
        session: &mut Session,
        message: Message,
    ) -> impl Future<Output = Result<()>> + Send {
        (self.on_message)(session.handle(), message)
    }
}

impl<F> std::fmt::Debug for HandlerFn<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerFn").finish_non_exhaustive()
    }
}

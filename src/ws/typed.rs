//! Typed messages: handlers that receive and send `serde` types, as JSON text messages.
//!
//! Implement [`TypedHandler`] with an `In` type for what clients send and an `Out` type for what
//! the server sends, and wrap it in [`Json`] (or stack a [`JsonLayer`]) to get a [`Handler`].
//! Incoming text and binary messages are parsed as JSON straight from the frame buffer; replies
//! are serialized once into a text message. The hooks get a [`TypedSession`], whose `send` takes
//! `&Out`; everything else of the [`Session`] is there through `Deref`.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use wsgrpc::ws::{Json, TypedHandler, TypedSession};
//!
//! #[derive(Deserialize)]
//! struct Add {
//!     a: i64,
//!     b: i64,
//! }
//!
//! #[derive(Serialize)]
//! struct Sum {
//!     sum: i64,
//! }
//!
//! struct Calculator;
//!
//! impl TypedHandler for Calculator {
//!     type In = Add;
//!     type Out = Sum;
//!
//!     async fn on_message(&self, session: TypedSession<'_, Sum>, add: Add) -> wsgrpc::Result<()> {
//!         session.send(&Sum { sum: add.a + add.b }).await
//!     }
//! }
//!
//! // `{"a":1,"b":2}` in, `{"sum":3}` out.
//! let handler = Json::new(Calculator);
//! # let _ = handler;
//! ```

use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::ws::{CloseCode, CloseReason, Handler, Layer, Message, Rejection, Session, Upgrade};

/// A handler of typed messages; wrap it in [`Json`] to serve it.
///
/// Like [`Handler`], every hook but `on_message` has a default, and the handler is shared by all
/// its connections (`&self`).
pub trait TypedHandler: Send + Sync + 'static {
    /// What clients send.
    type In: DeserializeOwned + Send;
    /// What the server sends.
    type Out: Serialize;

    /// Runs on the upgrade request, as [`Handler::on_upgrade`]. The default accepts.
    fn on_upgrade(
        &self,
        upgrade: &mut Upgrade,
    ) -> impl Future<Output = Result<(), Rejection>> + Send {
        let _ = upgrade;
        async { Ok(()) }
    }

    /// Runs once the connection is open, as [`Handler::on_open`]. The default does nothing.
    fn on_open(
        &self,
        session: TypedSession<'_, Self::Out>,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = session;
        async { Ok(()) }
    }

    /// Runs for each message that parsed as `In`. An error closes the connection with 1011.
    fn on_message(
        &self,
        session: TypedSession<'_, Self::Out>,
        message: Self::In,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Runs once when the connection has ended, as [`Handler::on_close`].
    fn on_close(
        &self,
        session: TypedSession<'_, Self::Out>,
        reason: CloseReason,
    ) -> impl Future<Output = ()> + Send {
        let _ = (session, reason);
        async {}
    }
}

/// The [`Session`] of a typed connection: `send` and `try_send` take `&Out`.
///
/// Everything else of the session (id, path, extensions, `handle`, `close`) is reachable through
/// `Deref`; [`raw`](Self::raw) gives the session itself, e.g. to send an untyped message.
pub struct TypedSession<'a, Out> {
    session: &'a mut Session,
    // `fn(&Out)`: the session sends `Out` values but does not own one, so `Out` need not be
    // `Send` or `Sync` for the session to be.
    _out: PhantomData<fn(&Out)>,
}

impl<'a, Out: Serialize> TypedSession<'a, Out> {
    /// Views `session` as one that sends `Out`.
    pub fn new(session: &'a mut Session) -> Self {
        TypedSession {
            session,
            _out: PhantomData,
        }
    }

    /// Encodes `value` as a JSON text message and queues it, waiting while the queue is full.
    pub fn send(&self, value: &Out) -> impl Future<Output = Result<()>> + Send + '_ {
        // Encoded before the future is built, so the future does not borrow `value`.
        let encoded = to_message(value);
        async move { self.session.send(encoded?).await }
    }

    /// Encodes `value` and queues it if there is room right now.
    pub fn try_send(&self, value: &Out) -> Result<()> {
        self.session.try_send(to_message(value)?)
    }

    /// The untyped session.
    pub fn raw(&mut self) -> &mut Session {
        self.session
    }
}

impl<Out> Deref for TypedSession<'_, Out> {
    type Target = Session;

    fn deref(&self) -> &Session {
        self.session
    }
}

impl<Out> DerefMut for TypedSession<'_, Out> {
    fn deref_mut(&mut self) -> &mut Session {
        self.session
    }
}

impl<Out> std::fmt::Debug for TypedSession<'_, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TypedSession").field(&self.session).finish()
    }
}

/// Encodes `value` as a JSON text message, e.g. to broadcast one encoding to many connections.
pub fn to_message<T: Serialize + ?Sized>(value: &T) -> Result<Message> {
    serde_json::to_string(value)
        .map(Message::from)
        .map_err(Error::Json)
}

/// What a [`Json`] handler does with a message that does not parse; see the
/// [`Json` docs](Json#messages-that-do-not-parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum InvalidMessage {
    /// Answer with `{"error":"invalid message","detail":"..."}` and go on. The default.
    #[default]
    Reply,
    /// Close the connection with 1007 `invalid json`.
    Close,
}

/// Serves a [`TypedHandler`] as a [`Handler`] speaking JSON: messages are parsed into `In`, and
/// the [`TypedSession`] encodes `Out`.
///
/// # Messages that do not parse
///
/// A message that is not valid JSON for `In` never reaches the handler. What happens instead is
/// [`InvalidMessage`], set with [`Json::on_invalid`]:
///
/// - [`InvalidMessage::Reply`] (the default): the connection goes on, and the client gets a text
///   message `{"error":"invalid message","detail":"<what serde_json said>"}`.
/// - [`InvalidMessage::Close`]: close with **1007** (data inconsistent with the message type, RFC
///   6455 section 7.4.1), reason `invalid json`.
///
/// Either way only that message is affected: the messages before it were handled, and with
/// `Reply` the ones after it are too.
///
/// To broadcast a typed value to many connections (see [`Hub`](crate::ws::Hub)), encode it once
/// with [`to_message`] and send the resulting [`Message`]: every recipient shares its bytes.
///
#[derive(Debug, Clone)]
pub struct Json<H> {
    inner: H,
    on_invalid: InvalidMessage,
}

impl<H> Json<H> {
    /// Serves `inner`, answering messages that do not parse with an error reply.
    pub fn new(inner: H) -> Self {
        Json {
            inner,
            on_invalid: InvalidMessage::Reply,
        }
    }

    /// What to do with a message that does not parse. Default [`InvalidMessage::Reply`].
    #[must_use]
    pub fn on_invalid(mut self, on_invalid: InvalidMessage) -> Self {
        self.on_invalid = on_invalid;
        self
    }

    /// The typed handler.
    pub fn get_ref(&self) -> &H {
        &self.inner
    }

    /// Unwraps the typed handler.
    pub fn into_inner(self) -> H {
        self.inner
    }
}

impl<H: TypedHandler> Handler for Json<H> {
    fn on_upgrade(
        &self,
        upgrade: &mut Upgrade,
    ) -> impl Future<Output = Result<(), Rejection>> + Send {
        self.inner.on_upgrade(upgrade)
    }

    fn on_open(&self, session: &mut Session) -> impl Future<Output = Result<()>> + Send {
        self.inner.on_open(TypedSession::new(session))
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> Result<()> {
        match serde_json::from_slice::<H::In>(message.as_bytes()) {
            Ok(typed) => {
                self.inner
                    .on_message(TypedSession::new(session), typed)
                    .await
            }
            Err(error) => {
                tracing::debug!(id = %session.id(), %error, "message is not valid json for this endpoint");
                match self.on_invalid {
                    InvalidMessage::Reply => {
                        let reply = to_message(&serde_json::json!({
                            "error": "invalid message",
                            "detail": error.to_string(),
                        }))?;
                        session.send(reply).await
                    }
                    InvalidMessage::Close => {
                        session.close(CloseCode::Invalid, "invalid json").await
                    }
                }
            }
        }
    }

    fn on_close(
        &self,
        session: &mut Session,
        reason: CloseReason,
    ) -> impl Future<Output = ()> + Send {
        self.inner.on_close(TypedSession::new(session), reason)
    }
}

/// Wraps a [`TypedHandler`] in [`Json`], so it can be the innermost handler of a
/// [`HandlerBuilder`](crate::ws::HandlerBuilder) stack.
///
/// ```
/// # use serde::{Deserialize, Serialize};
/// # use wsgrpc::ws::{TypedHandler, TypedSession};
/// use std::time::Duration;
/// use wsgrpc::ws::layer::{TimeoutLayer, TraceLayer};
/// use wsgrpc::ws::{HandlerBuilder, InvalidMessage, JsonLayer};
///
/// # struct Calculator;
/// # impl TypedHandler for Calculator {
/// #     type In = i64;
/// #     type Out = i64;
/// #     async fn on_message(&self, s: TypedSession<'_, i64>, n: i64) -> wsgrpc::Result<()> {
/// #         s.send(&(n * 2)).await
/// #     }
/// # }
/// let handler = HandlerBuilder::new()
///     .layer(TraceLayer::new())
///     .layer(TimeoutLayer::new(Duration::from_secs(5)))
///     .layer(JsonLayer::new().on_invalid(InvalidMessage::Close))
///     .handler(Calculator);
/// # let _ = handler;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonLayer {
    on_invalid: InvalidMessage,
}

impl JsonLayer {
    /// The JSON adapter with the default policy for messages that do not parse.
    pub fn new() -> Self {
        JsonLayer::default()
    }

    /// What to do with a message that does not parse. Default [`InvalidMessage::Reply`].
    #[must_use]
    pub fn on_invalid(mut self, on_invalid: InvalidMessage) -> Self {
        self.on_invalid = on_invalid;
        self
    }
}

impl<H: TypedHandler> Layer<H> for JsonLayer {
    type Handler = Json<H>;

    fn layer(&self, inner: H) -> Json<H> {
        Json::new(inner).on_invalid(self.on_invalid)
    }
}

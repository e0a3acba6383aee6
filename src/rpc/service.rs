//! The server side of typed calls: an [`RpcService`] served as a [`Handler`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Semaphore, watch};

use super::envelope::{Incoming, PushOut, ReplyOut, RpcError};
use crate::error::Result;
use crate::ws::{Handler, Message, Session, SessionHandle};

/// A typed call service: one request type in, one response type out.
pub trait RpcService: Send + Sync + 'static {
    /// What callers send.
    type Request: DeserializeOwned + Send + 'static;
    /// What a successful call returns.
    type Response: Serialize + Send + 'static;

    /// Answers one call. Calls of one connection run concurrently (up to
    /// [`RpcHandler::max_in_flight`]); `session` can also [`push`] to the caller.
    fn call(
        &self,
        session: &SessionHandle,
        request: Self::Request,
    ) -> impl Future<Output = Result<Self::Response, RpcError>> + Send;

    /// Runs when a connection opens (start pushing, register it somewhere). Default: nothing.
    fn on_open(&self, session: &SessionHandle) -> impl Future<Output = Result<()>> + Send {
        let _ = session;
        async { Ok(()) }
    }
}

/// Sends an unsolicited `{"push": value}` to the connection behind `session` (from a call, from
/// [`RpcService::on_open`], or from any task holding the handle).
pub fn push<'s, T: Serialize>(
    session: &'s SessionHandle,
    value: &T,
) -> impl Future<Output = Result<()>> + Send + 's {
    // Encoded before the future starts, so the future does not borrow `value`.
    let text = serde_json::to_string(&PushOut { push: value });
    async move { session.send(text?).await }
}

/// Serves an [`RpcService`] on WebSocket connections.
#[derive(Debug)]
pub struct RpcHandler<S> {
    service: Arc<S>,
    max_in_flight: usize,
}

impl<S: RpcService> RpcHandler<S> {
    /// Serves `service`, with at most 64 calls in flight per connection.
    pub fn new(service: S) -> Self {
        RpcHandler {
            service: Arc::new(service),
            max_in_flight: 64,
        }
    }

    /// Calls run concurrently per connection, up to `limit` (at least 1). Beyond it the connection
    /// stops reading until one finishes: a caller that floods calls is slowed down, not buffered.
    #[must_use]
    pub fn max_in_flight(mut self, limit: usize) -> Self {
        self.max_in_flight = limit.max(1);
        self
    }
}

/// A connection's running calls: the bound on them, and the switch that cancels them when the
/// connection ends.
struct InFlight {
    permits: Arc<Semaphore>,
    cancel: watch::Sender<bool>,
}

/// Encodes a reply envelope. A response that cannot be encoded becomes an `internal` error reply.
fn encode_reply<T: Serialize>(id: Option<u64>, outcome: Result<&T, &RpcError>) -> String {
    let envelope = match outcome {
        Ok(ok) => ReplyOut {
            id,
            ok: Some(ok),
            error: None,
        },
        Err(error) => ReplyOut {
            id,
            ok: None,
            error: Some(error),
        },
    };
    serde_json::to_string(&envelope).unwrap_or_else(|error| {
        tracing::error!(%error, "rpc response cannot be encoded as json");
        let error = RpcError::internal("the response could not be encoded");
        let envelope = ReplyOut::<()> {
            id,
            ok: None,
            error: Some(&error),
        };
        serde_json::to_string(&envelope).unwrap_or_default()
    })
}

async fn refuse(session: &SessionHandle, id: Option<u64>, error: RpcError) -> Result<()> {
    tracing::debug!(id = ?id, %error, "refusing a malformed call");
    session.send(encode_reply::<()>(id, Err(&error))).await
}

impl<S: RpcService> Handler for RpcHandler<S> {
    async fn on_open(&self, session: &mut Session) -> Result<()> {
        let in_flight = InFlight {
            permits: Arc::new(Semaphore::new(self.max_in_flight)),
            cancel: watch::Sender::new(false),
        };
        session.extensions_mut().insert(in_flight);
        self.service.on_open(&session.handle()).await
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> Result<()> {
        let handle = session.handle();
        let Some(text) = message.as_text() else {
            return refuse(
                &handle,
                None,
                RpcError::bad_request("calls are JSON text messages"),
            )
            .await;
        };
        let (id, payload) = match serde_json::from_str::<Incoming<'_>>(text) {
            Ok(Incoming {
                id: Some(id),
                call: Some(payload),
                ..
            }) => (id, payload),
            Ok(Incoming { id, .. }) => {
                let error =
                    RpcError::bad_request(r#"expected {"id": <number>, "call": <request>}"#);
                return refuse(&handle, id, error).await;
            }
            Err(error) => {
                let error = RpcError::bad_request(format!("not a json envelope: {error}"));
                return refuse(&handle, None, error).await;
            }
        };
        let request: S::Request = match serde_json::from_str(payload.get()) {
            Ok(request) => request,
            Err(error) => {
                return refuse(&handle, Some(id), RpcError::bad_request(error.to_string())).await;
            }
        };
        let Some(in_flight) = session.extensions().get::<InFlight>() else {
            return Err(crate::Error::handler(
                "rpc state missing: on_open did not run",
            ));
        };
        let mut cancelled = in_flight.cancel.subscribe();
        let permits = in_flight.permits.clone();
        let permit = permits
            .acquire_owned()
            .await
            .map_err(crate::Error::handler)?;
        let service = self.service.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let call = AssertUnwindSafe(service.call(&handle, request)).catch_unwind();
            let outcome = tokio::select! {
                outcome = call => outcome,
                _ = cancelled.wait_for(|cancelled| *cancelled) => return,
            };
            let text = match outcome {
                Ok(Ok(response)) => encode_reply(Some(id), Ok(&response)),
                Ok(Err(error)) => encode_reply::<()>(Some(id), Err(&error)),
                Err(_) => {
                    tracing::error!(id, "rpc call panicked");
                    encode_reply::<()>(Some(id), Err(&RpcError::internal("the call failed")))
                }
            };
            if let Err(error) = handle.send(text).await {
                tracing::debug!(id, %error, "rpc reply not delivered");
            }
        });
        Ok(())
    }

    async fn on_close(&self, session: &mut Session, _reason: crate::ws::CloseReason) {
        if let Some(in_flight) = session.extensions().get::<InFlight>() {
            in_flight.cancel.send_replace(true);
        }
    }
}

//! The client side of typed calls: `call(&request).await` over a [`Client`] connection.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use super::envelope::{CallOut, Incoming};
use crate::client::{Client, ClientBuilder};
use crate::error::{Error, Result};
use crate::ws::{CloseReason, Handler, Message, Session};

/// Marks which types a builder is for, without owning any (and staying `Send + Sync`).
type Types<Req, Resp, Push> = fn(&Req) -> (Resp, Push);

type Waiter<Resp> = oneshot::Sender<Result<Resp>>;

/// Calls waiting for replies, and counters of what could not be matched.
struct Pending<Resp> {
    waiters: Mutex<HashMap<u64, Waiter<Resp>>>,
    next_id: AtomicU64,
    unknown_replies: AtomicU64,
    malformed_messages: AtomicU64,
    dropped_pushes: AtomicU64,
}

impl<Resp> Pending<Resp> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Waiter<Resp>>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Configures an [`RpcClient`]: the connection (headers, reconnect, TLS, ...), the default call
/// timeout and the push buffer.
pub struct RpcClientBuilder<Req, Resp, Push> {
    client: ClientBuilder,
    call_timeout: Duration,
    push_buffer: usize,
    types: PhantomData<Types<Req, Resp, Push>>,
}

impl<Req, Resp, Push> RpcClientBuilder<Req, Resp, Push>
where
    Req: Serialize,
    Resp: DeserializeOwned + Send + 'static,
    Push: DeserializeOwned + Send + 'static,
{
    /// Calls over a connection made by `client`.
    pub fn new(client: ClientBuilder) -> Self {
        RpcClientBuilder {
            client,
            call_timeout: Duration::from_secs(30),
            push_buffer: 64,
            types: PhantomData,
        }
    }

    /// How long [`RpcClient::call`] waits for a reply. Default 30 s.
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Pushes kept until the application reads them. Default 64. When the buffer is full, further
    /// pushes are dropped and counted ([`RpcClient::dropped_pushes`]) rather than stalling the
    /// connection, so unread pushes can never hold up replies.
    #[must_use]
    pub fn push_buffer(mut self, pushes: usize) -> Self {
        self.push_buffer = pushes.max(1);
        self
    }

    /// Connects. Returns the caller and the stream of server pushes.
    pub async fn connect(self) -> Result<(RpcClient<Req, Resp>, mpsc::Receiver<Push>)> {
        let pending = Arc::new(Pending {
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            unknown_replies: AtomicU64::new(0),
            malformed_messages: AtomicU64::new(0),
            dropped_pushes: AtomicU64::new(0),
        });
        let (pushes, receiver) = mpsc::channel(self.push_buffer);
        let handler = Replies {
            pending: pending.clone(),
            pushes,
        };
        let client = self.client.connect(handler).await?;
        let caller = RpcClient {
            client,
            pending,
            call_timeout: self.call_timeout,
            types: PhantomData,
        };
        Ok((caller, receiver))
    }
}

/// Makes typed calls to an [`RpcHandler`](super::RpcHandler). Cheap to clone; calls from many
/// tasks share one connection.
pub struct RpcClient<Req, Resp> {
    client: Client,
    pending: Arc<Pending<Resp>>,
    call_timeout: Duration,
    types: PhantomData<fn(&Req) -> Resp>,
}

impl<Req, Resp> Clone for RpcClient<Req, Resp> {
    fn clone(&self) -> Self {
        RpcClient {
            client: self.client.clone(),
            pending: self.pending.clone(),
            call_timeout: self.call_timeout,
            types: PhantomData,
        }
    }
}

impl<Req, Resp> std::fmt::Debug for RpcClient<Req, Resp> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("client", &self.client)
            .field("in_flight", &self.pending.lock().len())
            .finish()
    }
}

impl<Req, Resp> RpcClient<Req, Resp>
where
    Req: Serialize,
    Resp: DeserializeOwned + Send + 'static,
{
    /// A builder for calls to `url`; `Push` is the type of server pushes.
    pub fn builder<Push>(url: impl Into<String>) -> RpcClientBuilder<Req, Resp, Push>
    where
        Push: DeserializeOwned + Send + 'static,
    {
        RpcClientBuilder::new(Client::builder(url))
    }

    /// Calls with the default timeout.
    pub async fn call(&self, request: &Req) -> Result<Resp> {
        self.call_with_timeout(request, self.call_timeout).await
    }

    /// Calls, failing with [`Error::Timeout`] if no reply arrives within `timeout`. Dropping the
    /// returned future abandons the call; a late reply is then counted as unknown.
    pub async fn call_with_timeout(&self, request: &Req, timeout: Duration) -> Result<Resp> {
        let id = self.pending.next_id.fetch_add(1, Ordering::Relaxed);
        let text = serde_json::to_string(&CallOut { id, call: request })?;
        let (waiter, reply) = oneshot::channel();
        self.pending.lock().insert(id, waiter);
        // Whatever happens next (timeout, send error, the caller giving up), the entry goes.
        let _forget = Forget {
            pending: &self.pending,
            id,
        };
        let exchange = async {
            self.client.send(text).await?;
            reply.await.map_err(|_| Error::ConnectionClosed)?
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// The connection underneath (state, close).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Calls waiting for a reply right now.
    pub fn in_flight(&self) -> usize {
        self.pending.lock().len()
    }

    /// Replies that matched no waiting call (late after a timeout, or bogus).
    pub fn unknown_replies(&self) -> u64 {
        self.pending.unknown_replies.load(Ordering::Relaxed)
    }

    /// Messages that were not envelopes at all.
    pub fn malformed_messages(&self) -> u64 {
        self.pending.malformed_messages.load(Ordering::Relaxed)
    }

    /// Pushes dropped because the push buffer was full.
    pub fn dropped_pushes(&self) -> u64 {
        self.pending.dropped_pushes.load(Ordering::Relaxed)
    }
}

/// Removes a call's waiter when the call ends, however it ends.
struct Forget<'a, Resp> {
    pending: &'a Pending<Resp>,
    id: u64,
}

impl<Resp> Drop for Forget<'_, Resp> {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.id);
    }
}

/// The client connection's handler: routes replies to waiters and pushes to the push buffer.
struct Replies<Resp, Push> {
    pending: Arc<Pending<Resp>>,
    pushes: mpsc::Sender<Push>,
}

impl<Resp, Push> Replies<Resp, Push>
where
    Resp: DeserializeOwned + Send + 'static,
    Push: DeserializeOwned + Send + 'static,
{
    fn malformed(&self, why: &str) {
        self.pending
            .malformed_messages
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(why, "dropping a message that is not an rpc envelope");
    }

    fn deliver(&self, text: &str) {
        let envelope = match serde_json::from_str::<Incoming<'_>>(text) {
            Ok(envelope) => envelope,
            Err(_) => return self.malformed("not json"),
        };
        if let Some(push) = envelope.push {
            match serde_json::from_str::<Push>(push.get()) {
                Ok(push) => {
                    if self.pushes.try_send(push).is_err() {
                        self.pending.dropped_pushes.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(_) => self.malformed("push of the wrong type"),
            }
            return;
        }
        let Some(id) = envelope.id else {
            return self.malformed("neither a push nor a reply with an id");
        };
        let Some(waiter) = self.pending.lock().remove(&id) else {
            self.pending.unknown_replies.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(id, "reply for a call nobody waits for");
            return;
        };
        let outcome = match (envelope.ok, envelope.error) {
            (_, Some(error)) => Err(Error::Rpc(error)),
            (Some(ok), None) => serde_json::from_str(ok.get()).map_err(Error::Json),
            // `"ok": null` reads as absent: a unit-like response.
            (None, None) => serde_json::from_str("null").map_err(Error::Json),
        };
        let _ = waiter.send(outcome);
    }
}

impl<Resp, Push> Handler for Replies<Resp, Push>
where
    Resp: DeserializeOwned + Send + 'static,
    Push: DeserializeOwned + Send + 'static,
{
    async fn on_message(&self, _session: &mut Session, message: Message) -> Result<()> {
        match message.as_text() {
            Some(text) => self.deliver(text),
            None => self.malformed("binary message"),
        }
        Ok(())
    }

    async fn on_close(&self, _session: &mut Session, _reason: CloseReason) {
        // Replies to these can no longer arrive on this connection.
        let waiters: Vec<_> = self.pending.lock().drain().collect();
        for (_, waiter) in waiters {
            let _ = waiter.send(Err(Error::ConnectionClosed));
        }
    }
}

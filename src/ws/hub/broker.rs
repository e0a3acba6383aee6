//! The link between one node's hub and a broker (Redis or NATS): a bounded outbox, one task that
//! publishes, receives and reconnects, and the counters that show how crossing goes.
//!
//! # Why it never blocks a connection
//!
//! Connection tasks never talk to the broker. A broadcast puts one envelope into the link's
//! bounded outbox and returns; the link's own task drains it in batches (one round trip for up
//! to [`MAX_BATCH`] envelopes). When the broker is down the outbox is not filled at all: a
//! publish fails at once and is counted ([`BrokerStats::failed`]), so an outage costs a broadcast
//! one atomic load, and memory stays bounded by the outbox.
//!
//! # Faults
//!
//! A failed or timed-out publish, or the end of the subscription, ends the link; the task then
//! reconnects with exponential backoff (backon: 50 ms doubling to 5 s, with jitter) and, once
//! connected, reports this node's presence at once so the others count its members again.
//! Delivery across nodes is at-most-once: what is published while the link is down, or is in
//! flight when it breaks, is lost (and counted), never replayed.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;

use super::Shared;
use super::wire;
use crate::error::BoxError;

/// Envelopes published in one round trip at most.
pub(super) const MAX_BATCH: usize = 256;

/// Connecting (and subscribing) may take this long before the attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A batch may take this long to publish before the link counts as broken: a slow broker
/// delays crossing by at most this, and never a connection.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// A broker backend: how to connect, publish and subscribe.
pub(super) trait Connector: Send + Sync + 'static {
    /// Publishes envelopes on the hub's channel.
    type Publisher: Publisher;
    /// The envelopes published on the hub's channel, by every node; ends when the link breaks.
    type Subscription: Stream<Item = Bytes> + Send + Unpin + 'static;

    /// Connects, subscribes to `channel` and returns both halves.
    fn connect(
        &self,
        channel: &str,
    ) -> impl Future<Output = Result<(Self::Publisher, Self::Subscription), BoxError>> + Send;
}

/// The publishing half of a link.
pub(super) trait Publisher: Send + 'static {
    /// Publishes `batch` on `channel` in order. Returns how many envelopes the broker refused
    /// (too large, say) while the link stays up; an error means the link is broken.
    fn publish(
        &mut self,
        channel: &str,
        batch: &[Bytes],
    ) -> impl Future<Output = Result<u64, BoxError>> + Send;
}

/// How crossing goes on one hub's broker link; from [`Hub::broker_stats`](crate::ws::Hub::broker_stats).
///
/// Counters start at zero when the hub is built and only grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// Whether the link is connected (and subscribed) right now.
    pub connected: bool,
    /// Envelopes (broadcasts, direct messages, presence reports) the broker accepted.
    pub published: u64,
    /// Envelopes that did not cross: published while the link was down, with the outbox full,
    /// in flight when the link broke, or refused by the broker.
    pub failed: u64,
    /// Envelopes received from the other nodes (this node's own echoes not counted).
    pub received: u64,
    /// Envelopes received that did not decode (another version, or garbage on the channel).
    pub refused: u64,
    /// Successful connections, the first one included: above 1 means the link reconnected.
    pub connects: u64,
    /// Other nodes heard from within their presence lifetime.
    pub nodes: usize,
}

/// The counters, shared by the hub and its link task.
#[derive(Default)]
pub(super) struct Counters {
    connected: AtomicBool,
    published: AtomicU64,
    failed: AtomicU64,
    received: AtomicU64,
    refused: AtomicU64,
    connects: AtomicU64,
}

impl Counters {
    pub(super) fn stats(&self, nodes: usize) -> BrokerStats {
        BrokerStats {
            connected: self.connected.load(Ordering::Acquire),
            published: self.published.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            connects: self.connects.load(Ordering::Relaxed),
            nodes,
        }
    }

    fn fail(&self, count: usize) {
        self.failed.fetch_add(count as u64, Ordering::Relaxed);
    }
}

/// What the hub holds of its link: the outbox and the counters. Dropping it (with the hub)
/// ends the link's task once the outbox is drained.
pub(super) struct Link {
    outbox: mpsc::Sender<Bytes>,
    counters: Arc<Counters>,
}

/// Whether an envelope was handed to the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Handed {
    Queued,
    Failed,
}

impl Link {
    /// Starts the link's task on the current tokio runtime.
    pub(super) fn spawn<C: Connector>(
        connector: C,
        channel: String,
        outbox: usize,
        heartbeat: Duration,
        hub: Weak<Shared>,
    ) -> Link {
        let (sender, receiver) = mpsc::channel(outbox.max(1));
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(
            connector,
            channel,
            receiver,
            heartbeat,
            hub,
            counters.clone(),
        ));
        Link {
            outbox: sender,
            counters,
        }
    }

    pub(super) fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Hands `envelope` to the link without waiting; fails at once while the link is down or its
    /// outbox is full.
    pub(super) fn try_publish(&self, envelope: Bytes) -> Handed {
        if !self.counters.connected.load(Ordering::Acquire) {
            self.counters.fail(1);
            return Handed::Failed;
        }
        match self.outbox.try_send(envelope) {
            Ok(()) => Handed::Queued,
            Err(_) => {
                self.counters.fail(1);
                Handed::Failed
            }
        }
    }

    /// Hands `envelope` to the link, waiting until `deadline` for room in the outbox while the
    /// link is up (backpressure to a publisher that outruns the broker); fails at once while it
    /// is down.
    pub(super) async fn publish(&self, envelope: Bytes, deadline: tokio::time::Instant) -> Handed {
        if !self.counters.connected.load(Ordering::Acquire) {
            self.counters.fail(1);
            return Handed::Failed;
        }
        match tokio::time::timeout_at(deadline, self.outbox.send(envelope)).await {
            Ok(Ok(())) => Handed::Queued,
            _ => {
                self.counters.fail(1);
                Handed::Failed
            }
        }
    }

    /// Queues a last envelope (the node's goodbye) if there is room; never fails loudly.
    pub(super) fn farewell(&self, envelope: Bytes) {
        if self.counters.connected.load(Ordering::Acquire) {
            let _ = self.outbox.try_send(envelope);
        }
    }
}

/// Why a connected link stopped.
enum Stop {
    /// The hub is gone: the task ends.
    HubGone,
    /// The link broke: reconnect.
    Broken(BoxError),
}

fn backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(5))
        .with_jitter()
        .without_max_times()
        .build()
}

/// The link's task: connect, run until broken, back off, again; until the hub is dropped.
async fn run<C: Connector>(
    connector: C,
    channel: String,
    mut outbox: mpsc::Receiver<Bytes>,
    heartbeat: Duration,
    hub: Weak<Shared>,
    counters: Arc<Counters>,
) {
    let mut delays = backoff();
    loop {
        let attempt = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(&channel)).await;
        let (publisher, subscription) = match attempt {
            Ok(Ok(halves)) => halves,
            failure => {
                let error: BoxError = match failure {
                    Ok(Err(error)) => error,
                    _ => "connecting timed out".into(),
                };
                let delay = delays.next().unwrap_or(Duration::from_secs(5));
                tracing::warn!(error = %error, retry_in = ?delay, "hub broker: cannot connect");
                if wait_discarding(&mut outbox, delay, &counters)
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
        };
        delays = backoff();
        counters.connects.fetch_add(1, Ordering::Relaxed);
        counters.connected.store(true, Ordering::Release);
        tracing::info!(channel = %channel, "hub broker: connected");
        let stop = tokio::select! {
            stop = publishing(publisher, &channel, &mut outbox, heartbeat, &hub, &counters) => stop,
            stop = receiving(subscription, &hub, &counters) => stop,
        };
        counters.connected.store(false, Ordering::Release);
        // What was waiting to cross is lost with the link (at-most-once), counted.
        while let Ok(_lost) = outbox.try_recv() {
            counters.fail(1);
        }
        match stop {
            Stop::HubGone => return,
            Stop::Broken(error) => {
                tracing::warn!(error = %error, "hub broker: link lost, reconnecting");
            }
        }
    }
}

/// Sleeps `delay`, counting as failed whatever is published meanwhile; `Err` once the hub is
/// gone.
async fn wait_discarding(
    outbox: &mut mpsc::Receiver<Bytes>,
    delay: Duration,
    counters: &Counters,
) -> Result<(), ()> {
    let sleep = tokio::time::sleep(delay);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            () = &mut sleep => return Ok(()),
            envelope = outbox.recv() => match envelope {
                Some(_) => counters.fail(1),
                None => return Err(()),
            },
        }
    }
}

/// Publishes the outbox in batches, and this node's presence every heartbeat (and right away).
async fn publishing<P: Publisher>(
    mut publisher: P,
    channel: &str,
    outbox: &mut mpsc::Receiver<Bytes>,
    heartbeat: Duration,
    hub: &Weak<Shared>,
    counters: &Counters,
) -> Stop {
    let mut ticks = tokio::time::interval(heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        tokio::select! {
            received = outbox.recv_many(&mut batch, MAX_BATCH) => {
                if received == 0 {
                    return Stop::HubGone;
                }
            }
            _ = ticks.tick() => match hub.upgrade() {
                Some(hub) => batch.push(hub.presence_report()),
                None => return Stop::HubGone,
            },
        }
        match tokio::time::timeout(PUBLISH_TIMEOUT, publisher.publish(channel, &batch)).await {
            Ok(Ok(refused)) => {
                counters
                    .published
                    .fetch_add(batch.len() as u64 - refused, Ordering::Relaxed);
                counters.failed.fetch_add(refused, Ordering::Relaxed);
            }
            Ok(Err(error)) => {
                counters.fail(batch.len());
                return Stop::Broken(error);
            }
            Err(_) => {
                counters.fail(batch.len());
                return Stop::Broken("publishing timed out".into());
            }
        }
        batch.clear();
    }
}

/// Delivers what the other nodes publish to this node's members.
async fn receiving<S: Stream<Item = Bytes> + Unpin>(
    mut subscription: S,
    hub: &Weak<Shared>,
    counters: &Counters,
) -> Stop {
    while let Some(envelope) = subscription.next().await {
        let Some(hub) = hub.upgrade() else {
            return Stop::HubGone;
        };
        match wire::decode(envelope) {
            Ok(envelope) => {
                if hub.receive(envelope).await {
                    counters.received.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(reason) => {
                counters.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(reason, "hub broker: envelope refused");
            }
        }
    }
    Stop::Broken("subscription ended".into())
}

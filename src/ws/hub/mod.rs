//! Broadcast and rooms: one message to many connections, on this node or on every node of a
//! deployment, without copies.
//!
//! A [`Hub`] keeps a set of connections (as [`SessionHandle`]s) and named rooms of them, and sends
//! a message to all of them, to a room, or to one connection. It is `Clone` (an `Arc` inside), so
//! handlers and background tasks share one.
//!
//! ```
//! use wsgrpc::ws::{CloseReason, Handler, Hub, Message, Session};
//!
//! /// Everything one connection says, every connection hears.
//! struct Shout {
//!     hub: Hub,
//! }
//!
//! impl Handler for Shout {
//!     async fn on_open(&self, session: &mut Session) -> wsgrpc::Result<()> {
//!         self.hub.join(&session.handle(), "everyone");
//!         Ok(())
//!     }
//!
//!     async fn on_message(&self, _session: &mut Session, message: Message) -> wsgrpc::Result<()> {
//!         // Waits while a member's queue is full: a burst is paced by the members' pace.
//!         self.hub.publish_to("everyone", message).await;
//!         Ok(())
//!     }
//!
//!     async fn on_close(&self, session: &mut Session, _reason: CloseReason) {
//!         self.hub.remove(session.id());
//!     }
//! }
//!
//! let handler = Shout { hub: Hub::new() };
//! # let _ = handler;
//! ```
//!
//! Where members live (this process, or every node through Redis or NATS) is the hub's backend;
//! [`Hub`]'s docs say what crossing nodes guarantees ("Across nodes").

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::error::Error;
use crate::ws::{CloseCode, ConnectionId, Message, SessionHandle};

// The link works the same for every backend; with none compiled in, only its types are used.
#[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
mod broker;
#[cfg(feature = "nats")]
mod nats;
#[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
mod presence;
#[cfg(feature = "redis")]
mod redis;
#[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(dead_code))]
mod wire;

pub use broker::BrokerStats;
use broker::{Handed, Link};
use wire::{Envelope, Target};

/// The reason sent with a slow consumer's close frame.
const SLOW_CONSUMER_REASON: &str = "slow consumer";

/// How long a waiting publish waits for a full queue by default.
const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// How often a hub reports its presence to the other nodes by default.
const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(1);

/// Envelopes waiting for the broker, at most, by default.
const DEFAULT_BROKER_QUEUE: usize = 4096;

/// The channel (Redis) or subject (NATS) the hubs of a deployment share by default.
const DEFAULT_NAMESPACE: &str = "wsgrpc.hub";

/// What a delivery does for a recipient that is a slow consumer; see the
/// [`Hub` docs](Hub#slow-consumers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumer {
    /// Close the connection with this code and the reason `slow consumer`, without waiting, and
    /// remove it from the hub.
    Close(CloseCode),
    /// Skip the message for that recipient and count it in [`Hub::lagged`].
    Lag,
}

impl Default for SlowConsumer {
    /// `Close(1008)`: a peer that does not keep up breaks the server's policy.
    fn default() -> Self {
        SlowConsumer::Close(CloseCode::Policy)
    }
}

/// What became of the copy of a message meant for the other nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Crossing {
    /// Nothing had to cross: the hub has no broker, or the one recipient is on this node.
    #[default]
    Local,
    /// Handed to the broker link, which publishes it shortly (at-most-once).
    Published,
    /// Not sent to the other nodes: the broker is down, or its outbox stayed full; counted in
    /// [`BrokerStats::failed`].
    Failed,
}

/// What one broadcast did, recipient by recipient, on this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// Local recipients the message was queued for.
    pub delivered: usize,
    /// Local recipients that skipped it under [`SlowConsumer::Lag`].
    pub lagged: usize,
    /// Local recipients closed and removed as slow consumers under [`SlowConsumer::Close`].
    pub dropped: usize,
    /// Local recipients whose connection had already closed; removed.
    pub closed: usize,
    /// Whether the message went to the other nodes.
    pub crossing: Crossing,
}

/// Connections and rooms to broadcast to, shared by cloning (an `Arc` inside).
///
/// # No copies
///
/// A broadcast clones the [`Message`] once per recipient, which clones a reference count: every
/// recipient's queue holds the same payload buffer. The hub's lock is a `std` read-write lock,
/// held only while messages are queued, never across an `.await`.
///
/// # Waiting or not
///
/// Each recipient has a bounded outgoing queue
/// ([`Config::outgoing_queue`](crate::ws::Config::outgoing_queue) messages). There are two ways
/// to send:
///
/// - [`publish`](Self::publish), [`publish_to`](Self::publish_to) and
///   [`publish_to_one`](Self::publish_to_one) (async, for handlers): a recipient whose queue is
///   full is waited for, up to the [slow-consumer grace](HubBuilder::slow_consumer_grace) (5 s
///   by default), all such recipients at once. While a handler waits its connection reads
///   nothing more, so a publisher that sends a burst is paced by its recipients (backpressure
///   down to its TCP window) instead of outrunning them. The common case, every queue with
///   room, costs the same as `broadcast`: nothing is awaited.
/// - [`broadcast`](Self::broadcast), [`broadcast_to`](Self::broadcast_to) and
///   [`send_to`](Self::send_to) (sync, for code that must never wait: timers, other tasks): a
///   full queue gets the slow-consumer policy at once. A burst through them can overflow healthy
///   recipients whose connections had no turn to write yet; pace such senders yourself.
///
/// # Across nodes
///
/// Where members live is the hub's backend, chosen when it is built; handlers do not change.
/// [`Hub::new`] keeps them in this process. With the `redis` or `nats` feature,
/// [`Hub::builder`]`.redis(url)` or `.nats(url)` links the hub to a broker: every node's hub
/// publishes what it sends once, as one envelope on one channel (subject), and every other node
/// delivers it to its own members from one shared buffer (one copy per node, not per member).
/// [`broadcast`](Hub::broadcast), [`broadcast_to`](Hub::broadcast_to) and
/// [`send_to`](Hub::send_to) (and the waiting `publish*` forms) reach members on every node;
/// a node never delivers its own broadcast twice (its echo is recognised by its
/// [node number](Hub::node) and skipped); the broker keeps one node's publishing order, so
/// per-room order from one sender holds. [`ConnectionId`]s carry their process's random node
/// number, so `send_to` an id accepted on another node reaches it there.
///
/// [`presence`](Hub::presence) counts every node: each hub reports its room counts to the others
/// whenever one changes and every [heartbeat](HubBuilder::heartbeat) (1 s by default). A node
/// that stops reporting (it crashed, or lost the broker) stops counting after
/// `3 x heartbeat` (3 s by default) plus the broker's latency; a hub that is dropped says goodbye
/// and stops counting at once.
///
/// Faults ([`BrokerStats`] counts them): crossing is **at-most-once**. While the broker is down,
/// local delivery goes on as if the hub were alone, remote publishes fail at once (counted in
/// [`BrokerStats::failed`], never buffered), and `presence` counts this node only once the
/// others' reports have expired. The link reconnects by itself with exponential backoff (50 ms to
/// 5 s, with jitter), reports this node's presence as soon as it is back, and crossing resumes. A
/// slow broker never stalls a connection's task: envelopes go through a bounded outbox
/// ([`HubBuilder::broker_queue`], 4,096 by default) that a task of the hub drains; a batch the
/// broker takes more than 5 s to accept breaks the link. What the other nodes publish is
/// delivered here as [`publish`](Hub::publish) does (waiting at most the slow-consumer grace for
/// a full queue); a node that cannot keep up loses cross-node messages to the broker's own
/// limits (Redis disconnects a subscriber over its pub/sub output buffer limit, NATS drops
/// messages for a slow consumer), which the link counts and recovers from.
///
/// # Slow consumers
///
/// A recipient is a slow consumer when its queue is full and stays full, its connection taking
/// nothing from it, for the whole grace (waiting forms), or as soon as it is found full (sync
/// forms). It then gets the [`SlowConsumer`] policy:
///
/// - [`SlowConsumer::Close`] (the default, with **1008** "slow consumer"): the connection is closed
///   without waiting ([`SessionHandle::try_close`]: its queued messages are discarded) and removed
///   from the hub. Memory stays bounded by the queue it already had.
/// - [`SlowConsumer::Lag`]: the message is skipped for that recipient and counted
///   ([`Hub::lagged`], [`Delivery::lagged`]); it stays a member and receives later messages once
///   its queue has room. Until then, further publishes skip it without waiting again, so one
///   stalled member costs a publisher one grace, not one per message.
///
/// Connections found closed are removed on the way. Still, call [`Hub::remove`] in
/// [`on_close`](crate::ws::Handler::on_close), so presence counts are right straight away.
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

struct Shared {
    state: RwLock<State>,
    policy: SlowConsumer,
    grace: Duration,
    /// This hub's node number on the broker: random per hub, so that two hubs of one process
    /// (as in tests and benches) are two nodes.
    node: u64,
    heartbeat_ms: u32,
    /// Set once, right after the hub is built, when it has a broker.
    link: OnceLock<Link>,
    /// The other nodes' presence (empty without a broker).
    remote: Mutex<presence::Remote>,
}

#[derive(Default)]
struct State {
    members: HashMap<ConnectionId, Joined>,
    rooms: HashMap<Arc<str>, HashMap<ConnectionId, Arc<Member>>>,
}

/// A member and the rooms it is in (a handful at most, so a `Vec`).
struct Joined {
    member: Arc<Member>,
    rooms: Vec<Arc<str>>,
}

struct Member {
    handle: SessionHandle,
    lagged: AtomicU64,
    /// Found full past the grace under [`SlowConsumer::Lag`] and not drained since: publishes
    /// skip it without waiting.
    behind: AtomicBool,
}

/// Which local members a delivery is for.
#[derive(Clone, Copy)]
enum Select<'a> {
    All,
    Room(&'a str),
    One(ConnectionId),
}

/// Settings for a [`Hub`]: the slow-consumer policy and grace, and a broker to reach other
/// nodes.
///
/// ```
/// use std::time::Duration;
/// use wsgrpc::ws::{Hub, SlowConsumer};
///
/// let hub = Hub::builder()
///     .slow_consumer(SlowConsumer::Lag)
///     .slow_consumer_grace(Duration::from_secs(2))
///     .build()
///     .expect("no broker, nothing can fail");
/// assert_eq!(hub.policy(), SlowConsumer::Lag);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct HubBuilder {
    policy: SlowConsumer,
    grace: Duration,
    broker: Option<Broker>,
    namespace: String,
    heartbeat: Duration,
    broker_queue: usize,
}

#[derive(Debug, Clone)]
enum Broker {
    #[cfg(feature = "redis")]
    Redis(String),
    #[cfg(feature = "nats")]
    Nats(String),
    /// A URL `broker` could not take; reported by `build`.
    Invalid(String),
}

impl Default for HubBuilder {
    fn default() -> Self {
        HubBuilder {
            policy: SlowConsumer::default(),
            grace: DEFAULT_GRACE,
            broker: None,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            heartbeat: DEFAULT_HEARTBEAT,
            broker_queue: DEFAULT_BROKER_QUEUE,
        }
    }
}

impl HubBuilder {
    /// What happens to a slow consumer; default [`SlowConsumer::Close`] with 1008.
    pub fn slow_consumer(mut self, policy: SlowConsumer) -> Self {
        self.policy = policy;
        self
    }

    /// How long a waiting publish ([`Hub::publish`] and friends, and deliveries from other
    /// nodes) waits for a member whose queue is full before treating it as a slow consumer;
    /// default 5 s. The sync forms never wait.
    pub fn slow_consumer_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Links the hub to the Redis server at `url` (`redis://[user:password@]host[:port][/db]`)
    /// through pub/sub: the members of every hub on that server and [namespace](Self::namespace)
    /// are reached. Needs the `redis` feature.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn redis(mut self, url: impl Into<String>) -> Self {
        self.broker = Some(Broker::Redis(url.into()));
        self
    }

    /// Links the hub to the NATS server at `url` (`nats://host[:port]`) through core pub/sub
    /// (no JetStream). Needs the `nats` feature.
    #[cfg(feature = "nats")]
    #[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
    pub fn nats(mut self, url: impl Into<String>) -> Self {
        self.broker = Some(Broker::Nats(url.into()));
        self
    }

    /// Links the hub to the broker `url` names by its scheme: `redis://` (feature `redis`) or
    /// `nats://` (feature `nats`). A scheme that is not one of those, or whose feature is off,
    /// makes [`build`](Self::build) fail with [`Error::HubBroker`] saying so (a command-line
    /// `--broker` flag can pass its value straight here).
    pub fn broker(mut self, url: &str) -> Self {
        let scheme = url.split("://").next().unwrap_or_default();
        #[cfg_attr(all(feature = "redis", feature = "nats"), allow(unused_variables))]
        let missing = |feature: &str| {
            Broker::Invalid(format!(
                "`{url}` needs wsgrpc's `{feature}` feature, which this build does not have"
            ))
        };
        self.broker = Some(match scheme {
            "redis" => {
                #[cfg(feature = "redis")]
                let broker = Broker::Redis(url.to_owned());
                #[cfg(not(feature = "redis"))]
                let broker = missing("redis");
                broker
            }
            "nats" => {
                #[cfg(feature = "nats")]
                let broker = Broker::Nats(url.to_owned());
                #[cfg(not(feature = "nats"))]
                let broker = missing("nats");
                broker
            }
            _ => Broker::Invalid(format!(
                "unsupported broker url `{url}`: expected redis://host:port or nats://host:port"
            )),
        });
        self
    }

    /// The channel (Redis) or subject (NATS) this hub shares with the other nodes; default
    /// `wsgrpc.hub`. Hubs with different namespaces on one broker do not see each other. Letters,
    /// digits, `-`, `_` and `.` only (a valid NATS subject and Redis channel alike).
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How often the hub reports its presence to the other nodes; default 1 s (at least 1 ms).
    /// A node that stopped reporting stops counting in [`Hub::presence`] elsewhere after three
    /// heartbeats.
    pub fn heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat.max(Duration::from_millis(1));
        self
    }

    /// Envelopes waiting for the broker, at most; default 4,096. Past it, sync broadcasts fail to
    /// cross (counted) and waiting publishes wait, up to the grace.
    pub fn broker_queue(mut self, envelopes: usize) -> Self {
        self.broker_queue = envelopes.max(1);
        self
    }

    /// Builds the hub. With a broker, it starts the hub's link task on the current tokio runtime
    /// and returns at once (the link connects in the background; until then remote publishes
    /// fail fast, see [`Hub::broker_stats`]).
    ///
    /// # Errors
    ///
    /// [`Error::HubBroker`] for a broker URL that does not parse or needs a feature that is off,
    /// a namespace with other characters than letters, digits, `-`, `_` and `.`, or a broker
    /// without a tokio runtime to run on. Without a broker it cannot fail.
    pub fn build(self) -> crate::Result<Hub> {
        let shared = Arc::new(Shared {
            state: RwLock::default(),
            policy: self.policy,
            grace: self.grace,
            node: random_u64(),
            heartbeat_ms: u32::try_from(self.heartbeat.as_millis()).unwrap_or(u32::MAX),
            link: OnceLock::new(),
            remote: Mutex::default(),
        });
        let Some(broker) = self.broker else {
            return Ok(Hub { shared });
        };
        // Irrefutable when no backend is compiled in: every broker URL is invalid then.
        #[allow(irrefutable_let_patterns)]
        if let Broker::Invalid(reason) = broker {
            return Err(Error::HubBroker(reason));
        }
        if self.namespace.is_empty()
            || !self
                .namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(Error::HubBroker(format!(
                "invalid hub namespace `{}`: letters, digits, `-`, `_` and `.` only",
                self.namespace
            )));
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::HubBroker(
                "a hub with a broker must be built inside a tokio runtime".to_owned(),
            ));
        }
        let link = spawn_link(
            broker,
            &shared,
            self.namespace,
            self.broker_queue,
            self.heartbeat,
        )?;
        let _ = shared.link.set(link);
        Ok(Hub { shared })
    }
}

/// Starts the link task for `broker`.
fn spawn_link(
    broker: Broker,
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(unused_variables))]
    shared: &Arc<Shared>,
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(unused_variables))]
    namespace: String,
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(unused_variables))]
    queue: usize,
    #[cfg_attr(not(any(feature = "redis", feature = "nats")), allow(unused_variables))]
    heartbeat: Duration,
) -> crate::Result<Link> {
    match broker {
        #[cfg(feature = "redis")]
        Broker::Redis(url) => Ok(Link::spawn(
            redis::Redis::new(&url)?,
            namespace,
            queue,
            heartbeat,
            Arc::downgrade(shared),
        )),
        #[cfg(feature = "nats")]
        Broker::Nats(url) => Ok(Link::spawn(
            nats::Nats::new(&url),
            namespace,
            queue,
            heartbeat,
            Arc::downgrade(shared),
        )),
        Broker::Invalid(reason) => Err(Error::HubBroker(reason)),
    }
}

/// 64 random bits from std's randomly keyed hasher (seeded from the OS), mixed with the clock.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    if let Ok(since) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(since.as_nanos());
    }
    hasher.finish()
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// An empty in-process hub with the default slow-consumer policy (close with 1008) and grace
    /// (5 s).
    pub fn new() -> Self {
        Hub::with_policy(SlowConsumer::default())
    }

    /// An empty in-process hub with the given slow-consumer policy.
    pub fn with_policy(policy: SlowConsumer) -> Self {
        match HubBuilder::default().slow_consumer(policy).build() {
            Ok(hub) => hub,
            Err(_) => unreachable!("a hub without a broker cannot fail to build"),
        }
    }

    /// Settings for a hub: policy, grace, and a broker to reach other nodes.
    pub fn builder() -> HubBuilder {
        HubBuilder::default()
    }

    /// The slow-consumer policy.
    pub fn policy(&self) -> SlowConsumer {
        self.shared.policy
    }

    /// How long waiting publishes wait for a full queue.
    pub fn slow_consumer_grace(&self) -> Duration {
        self.shared.grace
    }

    /// This hub's node number on the broker (random per hub).
    pub fn node(&self) -> u64 {
        self.shared.node
    }

    /// How crossing goes, when the hub has a broker; `None` for an in-process hub.
    pub fn broker_stats(&self) -> Option<BrokerStats> {
        let link = self.shared.link.get()?;
        let nodes = self.shared.remote().nodes(Instant::now());
        Some(link.counters().stats(nodes))
    }

    /// Adds a connection to the hub (it receives [`broadcast`](Self::broadcast)s). Returns
    /// whether it was new.
    pub fn add(&self, session: &SessionHandle) -> bool {
        let mut state = self.write();
        match state.members.entry(session.id()) {
            Entry::Occupied(_) => false,
            Entry::Vacant(vacant) => {
                vacant.insert(Joined::new(session));
                true
            }
        }
    }

    /// Adds a connection to `room` (and to the hub, if it was not yet). Returns whether it was
    /// new to the room.
    pub fn join(&self, session: &SessionHandle, room: &str) -> bool {
        let count = {
            let mut guard = self.write();
            let state = &mut *guard;
            let joined = state
                .members
                .entry(session.id())
                .or_insert_with(|| Joined::new(session));
            if joined.rooms.iter().any(|name| &**name == room) {
                return false;
            }
            // Reuse the room's name when it exists: members and room share one allocation.
            let name = match state.rooms.get_key_value(room) {
                Some((name, _)) => name.clone(),
                None => Arc::from(room),
            };
            let members = state.rooms.entry(name.clone()).or_default();
            members.insert(session.id(), joined.member.clone());
            joined.rooms.push(name);
            members.len()
        };
        self.report_count(room, count);
        true
    }

    /// Takes a connection out of `room`; it stays in the hub. Returns whether it was in the room.
    pub fn leave(&self, id: ConnectionId, room: &str) -> bool {
        let count = {
            let mut state = self.write();
            let Some(joined) = state.members.get_mut(&id) else {
                return false;
            };
            let Some(position) = joined.rooms.iter().position(|name| &**name == room) else {
                return false;
            };
            joined.rooms.swap_remove(position);
            state.leave_room(id, room)
        };
        self.report_count(room, count);
        true
    }

    /// Takes a connection out of every room and out of the hub; call it from `on_close`. Returns
    /// the rooms it was in.
    pub fn remove(&self, id: ConnectionId) -> Vec<String> {
        let left = self.write().remove(id);
        for (room, count) in &left {
            self.report_count(room, *count);
        }
        left.into_iter().map(|(room, _)| room).collect()
    }

    /// Connections in `room` right now, on every node: this node's exactly, the others' as they
    /// last reported (see [Across nodes](Hub#across-nodes)).
    pub fn presence(&self, room: &str) -> usize {
        let local = self.local_presence(room);
        if self.shared.link.get().is_none() {
            return local;
        }
        local + self.shared.remote().count(room, Instant::now())
    }

    /// Connections in `room` on this node.
    pub fn local_presence(&self, room: &str) -> usize {
        self.read().rooms.get(room).map_or(0, HashMap::len)
    }

    /// The rooms with at least one connection, on any node.
    pub fn rooms(&self) -> Vec<String> {
        let mut rooms: Vec<String> = self
            .read()
            .rooms
            .keys()
            .map(|name| name.to_string())
            .collect();
        if self.shared.link.get().is_some() {
            let mut known: std::collections::HashSet<String> = rooms.drain(..).collect();
            let remote = self.shared.remote();
            for room in remote.rooms(Instant::now()) {
                if !known.contains(room) {
                    known.insert(room.to_owned());
                }
            }
            rooms = known.into_iter().collect();
        }
        rooms
    }

    /// The rooms a connection of this node is in.
    pub fn rooms_of(&self, id: ConnectionId) -> Vec<String> {
        self.read()
            .members
            .get(&id)
            .map_or_else(Vec::new, |joined| {
                joined.rooms.iter().map(|name| name.to_string()).collect()
            })
    }

    /// Whether a connection is in the hub on this node.
    pub fn contains(&self, id: ConnectionId) -> bool {
        self.read().members.contains_key(&id)
    }

    /// Connections in the hub on this node.
    pub fn len(&self) -> usize {
        self.read().members.len()
    }

    /// Whether the hub has no connections on this node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages skipped for a connection under [`SlowConsumer::Lag`] since it was added; `None`
    /// when it is not in the hub on this node.
    pub fn lagged(&self, id: ConnectionId) -> Option<u64> {
        self.read()
            .members
            .get(&id)
            .map(|joined| joined.member.lagged.load(Ordering::Relaxed))
    }

    /// Sends `message` to every connection in the hub, on every node, without waiting: a full
    /// queue gets the slow-consumer policy at once.
    pub fn broadcast(&self, message: impl Into<Message>) -> Delivery {
        let message = message.into();
        let mut delivery = self.offer(Select::All, &message, false).0;
        delivery.crossing = self.try_cross(|| Target::All, &message);
        delivery
    }

    /// Sends `message` to every connection in `room`, on every node, without waiting.
    pub fn broadcast_to(&self, room: &str, message: impl Into<Message>) -> Delivery {
        let message = message.into();
        let mut delivery = self.offer(Select::Room(room), &message, false).0;
        delivery.crossing = self.try_cross(|| Target::Room(room.to_owned()), &message);
        delivery
    }

    /// Sends `message` to one connection, on whichever node it is, without waiting.
    pub fn send_to(&self, id: ConnectionId, message: impl Into<Message>) -> Delivery {
        let message = message.into();
        let (mut delivery, _, found) = self.offer(Select::One(id), &message, false);
        if !found {
            delivery.crossing = self.try_cross(|| Target::One(id), &message);
        }
        delivery
    }

    /// Sends `message` to every connection in the hub, on every node, waiting (up to the grace)
    /// for room in full queues; see [Waiting or not](Hub#waiting-or-not).
    pub async fn publish(&self, message: impl Into<Message>) -> Delivery {
        let message = message.into();
        let crossing = self.cross(|| Target::All, &message).await;
        let mut delivery = self.deliver(Select::All, &message).await.0;
        delivery.crossing = crossing;
        delivery
    }

    /// Sends `message` to every connection in `room`, on every node, waiting (up to the grace)
    /// for room in full queues.
    pub async fn publish_to(&self, room: &str, message: impl Into<Message>) -> Delivery {
        let message = message.into();
        let crossing = self.cross(|| Target::Room(room.to_owned()), &message).await;
        let mut delivery = self.deliver(Select::Room(room), &message).await.0;
        delivery.crossing = crossing;
        delivery
    }

    /// Sends `message` to one connection, on whichever node it is, waiting (up to the grace)
    /// while its queue is full.
    pub async fn publish_to_one(&self, id: ConnectionId, message: impl Into<Message>) -> Delivery {
        let message = message.into();
        let (mut delivery, found) = self.deliver(Select::One(id), &message).await;
        if !found {
            delivery.crossing = self.cross(|| Target::One(id), &message).await;
        }
        delivery
    }

    /// Hands the message to the broker link, if any, without waiting.
    fn try_cross(&self, target: impl FnOnce() -> Target, message: &Message) -> Crossing {
        let Some(link) = self.shared.link.get() else {
            return Crossing::Local;
        };
        match self.shared.envelope(target(), message) {
            Some(envelope) => crossing(link.try_publish(envelope)),
            None => Crossing::Failed,
        }
    }

    /// Hands the message to the broker link, if any, waiting up to the grace for room.
    async fn cross(&self, target: impl FnOnce() -> Target, message: &Message) -> Crossing {
        let Some(link) = self.shared.link.get() else {
            return Crossing::Local;
        };
        let Some(envelope) = self.shared.envelope(target(), message) else {
            return Crossing::Failed;
        };
        let deadline = tokio::time::Instant::now() + self.shared.grace;
        crossing(link.publish(envelope, deadline).await)
    }

    /// Tells the other nodes `room`'s count here changed.
    fn report_count(&self, room: &str, count: usize) {
        if let Some(link) = self.shared.link.get()
            && room.len() <= wire::MAX_ROOM
        {
            let envelope =
                wire::encode_room_count(self.shared.node, self.shared.heartbeat_ms, room, count);
            link.try_publish(envelope);
        }
    }

    /// Queues `message` for the selected local members, without waiting for full queues (they
    /// get the policy when `wait` is false, and are returned when it is true); also says whether
    /// a `Select::One` found its connection here.
    fn offer(
        &self,
        select: Select<'_>,
        message: &Message,
        wait: bool,
    ) -> (Delivery, Vec<Arc<Member>>, bool) {
        self.shared.offer(select, message, wait)
    }

    /// Queues `message` for the selected local members, waiting up to the grace for full queues.
    async fn deliver(&self, select: Select<'_>, message: &Message) -> (Delivery, bool) {
        self.shared.deliver(select, message).await
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.shared.read()
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.shared.write()
    }
}

fn crossing(handed: Handed) -> Crossing {
    match handed {
        Handed::Queued => Crossing::Published,
        Handed::Failed => Crossing::Failed,
    }
}

impl Shared {
    fn offer(
        &self,
        select: Select<'_>,
        message: &Message,
        wait: bool,
    ) -> (Delivery, Vec<Arc<Member>>, bool) {
        let mut delivery = Delivery::default();
        let mut full = Vec::new();
        let mut gone = Vec::new();
        let found = {
            let state = self.read();
            let mut offer = |member: &Arc<Member>| {
                self.offer_one(member, message, wait, &mut delivery, &mut full, &mut gone);
            };
            match select {
                Select::All => {
                    state
                        .members
                        .values()
                        .for_each(|joined| offer(&joined.member));
                    true
                }
                Select::Room(room) => {
                    if let Some(members) = state.rooms.get(room) {
                        members.values().for_each(offer);
                    }
                    true
                }
                Select::One(id) => match state.members.get(&id) {
                    Some(joined) => {
                        offer(&joined.member);
                        true
                    }
                    None => false,
                },
            }
        };
        self.forget(gone);
        // Final unless some members are still to be waited for (then `deliver` records it).
        if full.is_empty() {
            crate::metrics::hub_delivery(delivery.delivered, delivery.lagged, delivery.dropped);
        }
        (delivery, full, found)
    }

    fn offer_one(
        &self,
        member: &Arc<Member>,
        message: &Message,
        wait: bool,
        delivery: &mut Delivery,
        full: &mut Vec<Arc<Member>>,
        gone: &mut Vec<ConnectionId>,
    ) {
        match member.handle.try_send(message.clone()) {
            Ok(()) => {
                delivery.delivered += 1;
                if member.behind.load(Ordering::Relaxed) {
                    member.behind.store(false, Ordering::Relaxed);
                }
            }
            Err(Error::QueueFull) if wait && !member.behind.load(Ordering::Relaxed) => {
                full.push(member.clone());
            }
            Err(Error::QueueFull) => self.slow(member, delivery, gone),
            Err(_) => {
                gone.push(member.handle.id());
                delivery.closed += 1;
            }
        }
    }

    /// Applies the slow-consumer policy to `member`.
    fn slow(&self, member: &Member, delivery: &mut Delivery, gone: &mut Vec<ConnectionId>) {
        match self.policy {
            SlowConsumer::Close(code) => {
                tracing::debug!(id = %member.handle.id(), "slow consumer: closing it and removing it from the hub");
                // Never waits: with the queue full, this ends the connection right away.
                let _ = member.handle.try_close(code, SLOW_CONSUMER_REASON);
                gone.push(member.handle.id());
                delivery.dropped += 1;
            }
            SlowConsumer::Lag => {
                member.lagged.fetch_add(1, Ordering::Relaxed);
                member.behind.store(true, Ordering::Relaxed);
                delivery.lagged += 1;
            }
        }
    }

    async fn deliver(&self, select: Select<'_>, message: &Message) -> (Delivery, bool) {
        let (mut delivery, full, found) = self.offer(select, message, true);
        if full.is_empty() {
            return (delivery, found);
        }
        // Every full member gets the whole grace, all at once: the publisher waits at most one
        // grace however many are slow.
        let deadline = tokio::time::Instant::now() + self.grace;
        let outcomes =
            futures::future::join_all(full.iter().map(|member| {
                tokio::time::timeout_at(deadline, member.handle.send(message.clone()))
            }))
            .await;
        let mut gone = Vec::new();
        for (member, outcome) in full.iter().zip(outcomes) {
            match outcome {
                Ok(Ok(())) => delivery.delivered += 1,
                Ok(Err(_)) => {
                    gone.push(member.handle.id());
                    delivery.closed += 1;
                }
                Err(_elapsed) => self.slow(member, &mut delivery, &mut gone),
            }
        }
        self.forget(gone);
        crate::metrics::hub_delivery(delivery.delivered, delivery.lagged, delivery.dropped);
        (delivery, found)
    }

    /// An envelope for the other nodes; `None` for a room name too long to cross.
    fn envelope(&self, target: Target, message: &Message) -> Option<Bytes> {
        if matches!(&target, Target::Room(room) if room.len() > wire::MAX_ROOM) {
            return None;
        }
        Some(wire::encode_message(self.node, &target, message))
    }

    /// This node's whole presence, for the heartbeat; also forgets silent nodes.
    fn presence_report(&self) -> Bytes {
        self.remote().expire(Instant::now());
        let state = self.read();
        let rooms: Vec<(&str, usize)> = state
            .rooms
            .iter()
            .filter(|(name, _)| name.len() <= wire::MAX_ROOM)
            .map(|(name, members)| (&**name, members.len()))
            .collect();
        wire::encode_presence(self.node, self.heartbeat_ms, rooms.into_iter())
    }

    /// Handles an envelope from the broker; returns whether it came from another node.
    async fn receive(&self, envelope: Envelope) -> bool {
        let now = Instant::now();
        match envelope {
            Envelope::Message { origin, .. }
            | Envelope::Presence { origin, .. }
            | Envelope::RoomCount { origin, .. }
            | Envelope::Leaving { origin }
                if origin == self.node =>
            {
                false
            }
            Envelope::Message {
                target, message, ..
            } => {
                let select = match &target {
                    Target::All => Select::All,
                    Target::Room(room) => Select::Room(room),
                    Target::One(id) => Select::One(*id),
                };
                self.deliver(select, &message).await;
                true
            }
            Envelope::Presence {
                origin,
                heartbeat_ms,
                rooms,
            } => {
                self.remote().report(origin, heartbeat_ms, rooms, now);
                true
            }
            Envelope::RoomCount {
                origin,
                heartbeat_ms,
                room,
                members,
            } => {
                self.remote()
                    .room_count(origin, heartbeat_ms, room, members, now);
                true
            }
            Envelope::Leaving { origin } => {
                self.remote().forget(origin);
                true
            }
        }
    }

    /// Removes members a delivery found slow or closed.
    fn forget(&self, gone: Vec<ConnectionId>) {
        if gone.is_empty() {
            return;
        }
        let mut left = Vec::new();
        {
            let mut state = self.write();
            for id in gone {
                left.extend(state.remove(id));
            }
        }
        if let Some(link) = self.link.get() {
            for (room, count) in left {
                if room.len() <= wire::MAX_ROOM {
                    link.try_publish(wire::encode_room_count(
                        self.node,
                        self.heartbeat_ms,
                        &room,
                        count,
                    ));
                }
            }
        }
    }

    fn remote(&self) -> std::sync::MutexGuard<'_, presence::Remote> {
        self.remote.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while the lock was held cannot leave the maps half-updated in a way that
        // matters (each update is a few inserts/removes); keep serving rather than poison all.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Shared {
    /// The last clone of the hub is gone: tell the other nodes to stop counting its members.
    fn drop(&mut self) {
        if let Some(link) = self.link.get() {
            link.farewell(wire::encode_leaving(self.node));
        }
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("Hub")
            .field("members", &state.members.len())
            .field("rooms", &state.rooms.len())
            .field("policy", &self.shared.policy)
            .field("grace", &self.shared.grace)
            .field("broker", &self.shared.link.get().is_some())
            .finish()
    }
}

impl Joined {
    fn new(session: &SessionHandle) -> Self {
        Joined {
            member: Arc::new(Member {
                handle: session.clone(),
                lagged: AtomicU64::new(0),
                behind: AtomicBool::new(false),
            }),
            rooms: Vec::new(),
        }
    }
}

impl State {
    /// Removes `id` from `room`'s members, and the room once empty (so `rooms()` and memory
    /// shrink with it); returns how many members the room has left.
    fn leave_room(&mut self, id: ConnectionId, room: &str) -> usize {
        let Some(members) = self.rooms.get_mut(room) else {
            return 0;
        };
        members.remove(&id);
        let left = members.len();
        if left == 0 {
            self.rooms.remove(room);
        }
        left
    }

    /// Removes `id` from the hub; returns the rooms it was in, each with the members left.
    fn remove(&mut self, id: ConnectionId) -> Vec<(String, usize)> {
        let Some(joined) = self.members.remove(&id) else {
            return Vec::new();
        };
        joined
            .rooms
            .into_iter()
            .map(|room| {
                let left = self.leave_room(id, &room);
                (room.to_string(), left)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::{Extensions, Session};
    use bytes::Bytes;
    use tokio::sync::oneshot;
    use tungstenite::protocol::CloseFrame;

    type Outgoing = crate::ws::engine::queue::Receiver<tungstenite::Message>;

    /// An in-process session with a queue of `bound` messages.
    fn session(bound: usize) -> (Session, Outgoing, oneshot::Receiver<CloseFrame>) {
        let request = http::Request::get("/").body(()).expect("valid request");
        Session::new(request, None, None, Extensions::new(), bound)
    }

    fn payload(message: tungstenite::Message) -> Bytes {
        match message {
            tungstenite::Message::Binary(data) => data,
            other => panic!("expected binary, got {other:?}"),
        }
    }

    #[test]
    fn broadcast_shares_one_payload_buffer() {
        let hub = Hub::new();
        let mut sessions: Vec<_> = (0..3).map(|_| session(8)).collect();
        for (session, _, _) in &sessions {
            hub.join(&session.handle(), "room");
        }
        let data = Bytes::from(vec![7u8; 4096]);
        let delivery = hub.broadcast_to("room", data.clone());
        assert_eq!(delivery.delivered, 3);
        for (_, outgoing, _) in &mut sessions {
            let received = payload(outgoing.try_recv().expect("queued"));
            // Same buffer, not an equal copy.
            assert_eq!(received.as_ptr(), data.as_ptr());
            assert_eq!(received.len(), data.len());
        }
    }

    #[test]
    fn rooms_are_separate_and_presence_follows_joins() {
        let hub = Hub::new();
        let (a, mut a_out, _a_close) = session(8);
        let (b, mut b_out, _b_close) = session(8);
        assert!(hub.join(&a.handle(), "red"));
        assert!(!hub.join(&a.handle(), "red"));
        assert!(hub.join(&b.handle(), "blue"));
        assert!(hub.join(&a.handle(), "blue"));
        assert_eq!((hub.presence("red"), hub.presence("blue")), (1, 2));
        assert_eq!(hub.broadcast_to("red", "r").delivered, 1);
        assert_eq!(hub.broadcast_to("nowhere", "x"), Delivery::default());
        assert_eq!(hub.send_to(b.id(), "direct").delivered, 1);
        assert_eq!(hub.broadcast("all").delivered, 2);
        let texts = |out: &mut Outgoing| {
            std::iter::from_fn(|| out.try_recv())
                .map(|message| message.into_text().expect("text").to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(&mut a_out), ["r", "all"]);
        assert_eq!(texts(&mut b_out), ["direct", "all"]);
        assert!(hub.leave(a.id(), "blue"));
        assert!(!hub.leave(a.id(), "blue"));
        assert_eq!(hub.presence("blue"), 1);
        let mut left = hub.remove(a.id());
        left.sort();
        assert_eq!(left, ["red"]);
        hub.remove(b.id());
        assert_eq!((hub.presence("red"), hub.presence("blue")), (0, 0));
        assert!(hub.rooms().is_empty() && hub.is_empty());
    }

    #[test]
    fn slow_consumer_is_closed_and_removed_by_default() {
        let hub = Hub::new();
        let (fast, mut fast_out, _) = session(8);
        let (slow, _slow_out, mut slow_close) = session(1);
        hub.join(&fast.handle(), "room");
        hub.join(&slow.handle(), "room");
        assert_eq!(hub.broadcast_to("room", "one").delivered, 2);
        // The slow one's queue (1 message) is full now and nobody drains it.
        let delivery = hub.broadcast_to("room", "two");
        assert_eq!((delivery.delivered, delivery.dropped), (1, 1));
        assert_eq!(hub.presence("room"), 1);
        assert!(!hub.contains(slow.id()));
        let frame = slow_close.try_recv().expect("forced close");
        assert_eq!(frame.code, CloseCode::Policy);
        assert_eq!(frame.reason.as_str(), SLOW_CONSUMER_REASON);
        assert_eq!(std::iter::from_fn(|| fast_out.try_recv()).count(), 2);
    }

    #[test]
    fn lag_policy_skips_and_counts() {
        let hub = Hub::with_policy(SlowConsumer::Lag);
        let (slow, mut slow_out, _) = session(1);
        hub.add(&slow.handle());
        assert_eq!(hub.broadcast("one").delivered, 1);
        assert_eq!(hub.broadcast("two").lagged, 1);
        assert_eq!(hub.broadcast("three").lagged, 1);
        assert_eq!(hub.lagged(slow.id()), Some(2));
        // Once it has room again, it receives the next message.
        assert!(slow_out.try_recv().is_some());
        assert_eq!(hub.broadcast("four").delivered, 1);
    }

    #[test]
    fn closed_connections_are_removed_on_delivery() {
        let hub = Hub::new();
        let (gone, gone_out, _) = session(8);
        hub.join(&gone.handle(), "room");
        drop(gone_out);
        assert_eq!(hub.broadcast_to("room", "x").closed, 1);
        assert_eq!(hub.presence("room"), 0);
    }

    fn hub(policy: SlowConsumer, grace: Duration) -> Hub {
        Hub::builder()
            .slow_consumer(policy)
            .slow_consumer_grace(grace)
            .build()
            .expect("no broker")
    }

    #[tokio::test]
    async fn publish_waits_for_a_full_queue_that_drains() {
        let hub = hub(SlowConsumer::default(), Duration::from_secs(5));
        let (member, mut outgoing, _close) = session(1);
        hub.join(&member.handle(), "room");
        assert_eq!(hub.publish_to("room", "one").await.delivered, 1);
        let second = tokio::spawn({
            let hub = hub.clone();
            async move { hub.publish_to("room", "two").await }
        });
        // The queue is full until the connection takes "one"; then "two" goes in, not a close.
        tokio::task::yield_now().await;
        assert!(!second.is_finished(), "a full queue is waited for");
        assert_eq!(
            std::future::poll_fn(|cx| outgoing.poll_recv(cx))
                .await
                .and_then(|m| m.into_text().ok())
                .as_deref(),
            Some("one")
        );
        let delivery = second.await.expect("task");
        assert_eq!((delivery.delivered, delivery.dropped), (1, 0));
        assert_eq!(delivery.crossing, Crossing::Local);
        assert!(hub.contains(member.id()));
    }

    #[tokio::test(start_paused = true)]
    async fn publish_closes_a_member_whose_queue_stays_full_for_the_grace() {
        let grace = Duration::from_millis(1500);
        let hub = hub(SlowConsumer::default(), grace);
        let (fast, mut fast_out, _) = session(8);
        let (stalled, _stalled_out, mut stalled_close) = session(1);
        hub.join(&fast.handle(), "room");
        hub.join(&stalled.handle(), "room");
        hub.publish_to("room", "one").await;
        let started = tokio::time::Instant::now();
        let delivery = hub.publish_to("room", "two").await;
        assert_eq!((delivery.delivered, delivery.dropped), (1, 1));
        assert_eq!(started.elapsed(), grace, "waited exactly the grace");
        assert!(!hub.contains(stalled.id()));
        assert_eq!(
            stalled_close.try_recv().expect("forced close").code,
            CloseCode::Policy
        );
        assert_eq!(std::iter::from_fn(|| fast_out.try_recv()).count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn under_lag_a_stalled_member_costs_one_grace_not_one_per_message() {
        let grace = Duration::from_secs(2);
        let hub = hub(SlowConsumer::Lag, grace);
        let (stalled, mut stalled_out, _) = session(1);
        hub.add(&stalled.handle());
        hub.publish("one").await;
        let started = tokio::time::Instant::now();
        assert_eq!(hub.publish("two").await.lagged, 1);
        assert_eq!(hub.publish("three").await.lagged, 1);
        assert_eq!(started.elapsed(), grace);
        assert_eq!(hub.lagged(stalled.id()), Some(2));
        // Drained, it is waited for again (and gets the next message).
        assert!(stalled_out.try_recv().is_some());
        assert_eq!(hub.publish("four").await.delivered, 1);
    }

    #[test]
    fn builder_refuses_what_it_cannot_run() {
        let unsupported = Hub::builder().broker("amqp://127.0.0.1").build();
        assert!(
            matches!(&unsupported, Err(Error::HubBroker(reason)) if reason.contains("amqp://")),
            "{unsupported:?}"
        );
        #[cfg(feature = "redis")]
        {
            // A broker needs a runtime for its link task.
            let outside = Hub::builder().broker("redis://127.0.0.1:1").build();
            assert!(matches!(outside, Err(Error::HubBroker(_))));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let _guard = runtime.enter();
            let namespace = Hub::builder()
                .redis("redis://127.0.0.1:1")
                .namespace("no spaces")
                .build();
            assert!(matches!(namespace, Err(Error::HubBroker(_))));
            let hub = Hub::builder()
                .broker("redis://127.0.0.1:1")
                .build()
                .expect("valid");
            // Nothing listens there: crossing fails fast, local delivery goes on.
            let (member, mut out, _) = session(4);
            hub.add(&member.handle());
            let delivery = hub.broadcast("x");
            assert_eq!(delivery.delivered, 1);
            assert_eq!(delivery.crossing, Crossing::Failed);
            assert!(out.try_recv().is_some());
            let stats = hub.broker_stats().expect("a broker");
            assert!(!stats.connected && stats.failed >= 1);
        }
    }
}

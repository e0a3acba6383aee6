//! Broadcast and rooms: one message to many connections, without copies and without waiting.
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
//!         self.hub.broadcast_to("everyone", message);
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

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::Error;
use crate::ws::{CloseCode, ConnectionId, Message, SessionHandle};

/// The reason sent with a slow consumer's close frame.
const SLOW_CONSUMER_REASON: &str = "slow consumer";

/// What a broadcast does for a recipient whose outgoing queue is full; see the
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

/// What one broadcast did, recipient by recipient.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// Recipients the message was queued for.
    pub delivered: usize,
    /// Recipients that skipped it under [`SlowConsumer::Lag`].
    pub lagged: usize,
    /// Recipients closed and removed as slow consumers under [`SlowConsumer::Close`].
    pub dropped: usize,
    /// Recipients whose connection had already closed; removed.
    pub closed: usize,
}

/// Connections and rooms to broadcast to, shared by cloning (an `Arc` inside).
///
/// # No copies, no waiting
///
/// A broadcast clones the [`Message`] once per recipient, which clones a reference count: every
/// recipient's queue holds the same payload buffer. It puts the message into each recipient's
/// bounded outgoing queue with `try_send`, never awaiting anyone, so it costs the same whether
/// recipients read fast, slowly or not at all, and one slow client never slows the others. The
/// hub's lock is a `std` read-write lock, held only while messages are queued, never across an
/// `.await`.
///
/// # Slow consumers
///
/// A recipient whose queue is full (a peer that stopped reading while its socket buffers filled)
/// gets the [`SlowConsumer`] policy:
///
/// - [`SlowConsumer::Close`] (the default, with **1008** "slow consumer"): the connection is closed
///   without waiting ([`SessionHandle::try_close`]: its queued messages are discarded) and removed
///   from the hub. Memory stays bounded by the queue it already had.
/// - [`SlowConsumer::Lag`]: the message is skipped for that recipient and counted
///   ([`Hub::lagged`], [`Delivery::lagged`]); it stays a member and receives later messages once
///   its queue has room. Suits feeds where the latest value matters more than every value.
///
/// Connections found closed are removed on the way. Still, call [`Hub::remove`] in
/// [`on_close`](crate::ws::Handler::on_close), so presence counts are right straight away.
#[derive(Clone, Default)]
pub struct Hub {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: RwLock<State>,
    policy: SlowConsumer,
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
}

impl Hub {
    /// An empty hub with the default slow-consumer policy (close with 1008).
    pub fn new() -> Self {
        Hub::default()
    }

    /// An empty hub with the given slow-consumer policy.
    pub fn with_policy(policy: SlowConsumer) -> Self {
        Hub {
            shared: Arc::new(Shared {
                state: RwLock::default(),
                policy,
            }),
        }
    }

    /// The slow-consumer policy.
    pub fn policy(&self) -> SlowConsumer {
        self.shared.policy
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
        state
            .rooms
            .entry(name.clone())
            .or_default()
            .insert(session.id(), joined.member.clone());
        joined.rooms.push(name);
        true
    }

    /// Takes a connection out of `room`; it stays in the hub. Returns whether it was in the room.
    pub fn leave(&self, id: ConnectionId, room: &str) -> bool {
        let mut state = self.write();
        let Some(joined) = state.members.get_mut(&id) else {
            return false;
        };
        let Some(position) = joined.rooms.iter().position(|name| &**name == room) else {
            return false;
        };
        joined.rooms.swap_remove(position);
        state.leave_room(id, room);
        true
    }

    /// Takes a connection out of every room and out of the hub; call it from `on_close`. Returns
    /// the rooms it was in.
    pub fn remove(&self, id: ConnectionId) -> Vec<String> {
        self.write().remove(id)
    }

    /// Connections in `room` right now.
    pub fn presence(&self, room: &str) -> usize {
        self.read().rooms.get(room).map_or(0, HashMap::len)
    }

    /// The rooms with at least one connection.
    pub fn rooms(&self) -> Vec<String> {
        self.read()
            .rooms
            .keys()
            .map(|name| name.to_string())
            .collect()
    }

    /// The rooms a connection is in.
    pub fn rooms_of(&self, id: ConnectionId) -> Vec<String> {
        self.read()
            .members
            .get(&id)
            .map_or_else(Vec::new, |joined| {
                joined.rooms.iter().map(|name| name.to_string()).collect()
            })
    }

    /// Whether a connection is in the hub.
    pub fn contains(&self, id: ConnectionId) -> bool {
        self.read().members.contains_key(&id)
    }

    /// Connections in the hub.
    pub fn len(&self) -> usize {
        self.read().members.len()
    }

    /// Whether the hub has no connections.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages skipped for a connection under [`SlowConsumer::Lag`] since it was added; `None`
    /// when it is not in the hub.
    pub fn lagged(&self, id: ConnectionId) -> Option<u64> {
        self.read()
            .members
            .get(&id)
            .map(|joined| joined.member.lagged.load(Ordering::Relaxed))
    }

    /// Sends `message` to every connection in the hub, without waiting.
    pub fn broadcast(&self, message: impl Into<Message>) -> Delivery {
        let message = message.into();
        let (delivery, gone) = {
            let state = self.read();
            self.deliver(
                state.members.values().map(|joined| &joined.member),
                &message,
            )
        };
        self.forget(gone);
        delivery
    }

    /// Sends `message` to every connection in `room`, without waiting.
    pub fn broadcast_to(&self, room: &str, message: impl Into<Message>) -> Delivery {
        let message = message.into();
        let (delivery, gone) = {
            let state = self.read();
            let Some(members) = state.rooms.get(room) else {
                return Delivery::default();
            };
            self.deliver(members.values(), &message)
        };
        self.forget(gone);
        delivery
    }

    /// Sends `message` to one connection of the hub, without waiting.
    pub fn send_to(&self, id: ConnectionId, message: impl Into<Message>) -> Delivery {
        let message = message.into();
        let (delivery, gone) = {
            let state = self.read();
            let member = state.members.get(&id).map(|joined| &joined.member);
            self.deliver(member.into_iter(), &message)
        };
        self.forget(gone);
        delivery
    }

    /// Queues `message` for each member under the read lock; returns what happened and the
    /// members to remove (allocating only when there are any).
    fn deliver<'a>(
        &self,
        members: impl Iterator<Item = &'a Arc<Member>>,
        message: &Message,
    ) -> (Delivery, Vec<ConnectionId>) {
        let mut delivery = Delivery::default();
        let mut gone = Vec::new();
        for member in members {
            match member.handle.try_send(message.clone()) {
                Ok(()) => delivery.delivered += 1,
                Err(Error::QueueFull) => match self.shared.policy {
                    SlowConsumer::Close(code) => {
                        tracing::debug!(id = %member.handle.id(), "slow consumer: closing it and removing it from the hub");
                        // Never waits: with the queue full, this ends the connection right away.
                        let _ = member.handle.try_close(code, SLOW_CONSUMER_REASON);
                        gone.push(member.handle.id());
                        delivery.dropped += 1;
                    }
                    SlowConsumer::Lag => {
                        member.lagged.fetch_add(1, Ordering::Relaxed);
                        delivery.lagged += 1;
                    }
                },
                Err(_) => {
                    gone.push(member.handle.id());
                    delivery.closed += 1;
                }
            }
        }
        crate::metrics::hub_delivery(delivery.delivered, delivery.lagged, delivery.dropped);
        (delivery, gone)
    }

    /// Removes members a delivery found slow or closed.
    fn forget(&self, gone: Vec<ConnectionId>) {
        if gone.is_empty() {
            return;
        }
        let mut state = self.write();
        for id in gone {
            state.remove(id);
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while the lock was held cannot leave the maps half-updated in a way that
        // matters (each update is a few inserts/removes); keep serving rather than poison all.
        self.shared
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.shared
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("Hub")
            .field("members", &state.members.len())
            .field("rooms", &state.rooms.len())
            .field("policy", &self.shared.policy)
            .finish()
    }
}

impl Joined {
    fn new(session: &SessionHandle) -> Self {
        Joined {
            member: Arc::new(Member {
                handle: session.clone(),
                lagged: AtomicU64::new(0),
            }),
            rooms: Vec::new(),
        }
    }
}

impl State {
    /// Removes `id` from `room`'s members, and the room once empty (so `rooms()` and memory
    /// shrink with it).
    fn leave_room(&mut self, id: ConnectionId, room: &str) {
        if let Some(members) = self.rooms.get_mut(room) {
            members.remove(&id);
            if members.is_empty() {
                self.rooms.remove(room);
            }
        }
    }

    fn remove(&mut self, id: ConnectionId) -> Vec<String> {
        let Some(joined) = self.members.remove(&id) else {
            return Vec::new();
        };
        joined
            .rooms
            .into_iter()
            .map(|room| {
                self.leave_room(id, &room);
                room.to_string()
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
}

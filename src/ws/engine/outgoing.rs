//! The receiving end of a connection's outgoing queue, as the engine sees it.
//!
//! A server connection owns its queue; a reconnecting client lends one that outlives each
//! connection. This adapter lets the write path take from either without caring which, and
//! decides what "the connection ended" means for each (see [`Queue::connection_ended`]).

use std::task::{Context, Poll};

use super::queue;
use crate::ws::session::Outgoing;

/// The receiving end of a connection's outgoing queue.
pub(crate) enum Queue<'q> {
    /// A server connection's queue lives and dies with the connection.
    Owned(queue::Receiver<Outgoing>),
    /// A reconnecting client's queue outlives each connection, so that what is sent while
    /// disconnected waits (bounded) for the next one. Only an explicit close ends it.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    Shared(&'q mut queue::Receiver<Outgoing>),
}

impl Queue<'_> {
    /// Takes the next message without registering for a wake-up: the connection calls this while
    /// it is busy anyway, so a handler's own reply does not schedule a needless extra poll.
    pub(super) fn try_recv(&mut self) -> Option<Outgoing> {
        match self {
            Queue::Owned(receiver) => receiver.try_recv(),
            Queue::Shared(receiver) => receiver.try_recv(),
        }
    }

    /// Stops being woken by new messages until the next [`poll_recv`](Self::poll_recv).
    pub(super) fn unwatch(&mut self) {
        match self {
            Queue::Owned(receiver) => receiver.unwatch(),
            Queue::Shared(receiver) => receiver.unwatch(),
        }
    }

    /// Takes the next message, or registers the task to be woken when one arrives.
    pub(super) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Outgoing>> {
        match self {
            Queue::Owned(receiver) => receiver.poll_recv(cx),
            Queue::Shared(receiver) => receiver.poll_recv(cx),
        }
    }

    /// Refuses further messages for good: a close was requested.
    pub(super) fn close(&mut self) {
        match self {
            Queue::Owned(receiver) => receiver.close(),
            Queue::Shared(receiver) => receiver.close(),
        }
    }

    /// The connection is over: an owned queue refuses further messages, a shared one keeps
    /// buffering for the next connection.
    pub(super) fn connection_ended(&mut self) {
        if let Queue::Owned(receiver) = self {
            receiver.close();
        }
    }
}

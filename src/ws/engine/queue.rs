//! A connection's bounded outgoing queue.
//!
//! tokio's bounded mpsc allocates its first block of 32 slots when the channel is created, about
//! 1.8 KiB per connection before anything is sent. This queue allocates only while messages are
//! waiting and gives the memory back once it drains, which matters when most of ten thousand
//! connections are idle.
//!
//! It is also cheap per message, because every message of an echo or a broadcast passes through
//! it: the bound is checked under the same lock that guards the items, so a send is one lock and
//! a wake, and a receive one lock. (A semaphore for the bound, as before, cost a second lock per
//! receive to give the permit back.) Senders that find the queue full wait on a [`Notify`] and
//! are woken one per freed slot, in the order they started waiting; a sender arriving while a
//! slot is free takes it even if others are about to be woken, so the order among concurrent
//! senders is not strictly FIFO. One sender's own messages always keep their order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use tokio::sync::Notify;

/// Room kept after draining; beyond it the storage is released.
const KEEP_CAPACITY: usize = 16;

struct State<T> {
    items: VecDeque<T>,
    /// Senders waiting for room (so a receive knows whether to wake one).
    waiting: usize,
    closed: bool,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    bound: usize,
    /// Senders waiting for room.
    room: Notify,
    receiver: AtomicWaker,
    /// A copy of `State::closed` that senders can read without the lock.
    closed: AtomicBool,
}

impl<T> Shared<T> {
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why a send did not go through; the message comes back.
#[derive(Debug)]
pub(crate) enum SendError<T> {
    Full(T),
    Closed(T),
}

/// The sending side; cheap to clone.
pub(crate) struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            shared: self.shared.clone(),
        }
    }
}

/// The receiving side, owned by the connection.
pub(crate) struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

/// A queue holding at most `bound` items (at least 1).
pub(crate) fn channel<T>(bound: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            waiting: 0,
            closed: false,
        }),
        bound: bound.max(1),
        room: Notify::new(),
        receiver: AtomicWaker::new(),
        closed: AtomicBool::new(false),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// Counts a sender as waiting while it lives, so that a cancelled send stops counting.
struct Waiting<'a, T> {
    shared: &'a Shared<T>,
}

impl<T> Drop for Waiting<'_, T> {
    fn drop(&mut self) {
        self.shared.state().waiting -= 1;
    }
}

impl<T> Sender<T> {
    /// Queues `item`, waiting for room.
    pub(crate) async fn send(&self, item: T) -> Result<(), SendError<T>> {
        let mut item = match self.try_send(item) {
            Err(SendError::Full(item)) => item,
            done => return done,
        };
        loop {
            let notified = self.shared.room.notified();
            let mut notified = std::pin::pin!(notified);
            let waiting = {
                let mut state = self.shared.state();
                if state.closed {
                    return Err(SendError::Closed(item));
                }
                if state.items.len() < self.shared.bound {
                    state.items.push_back(item);
                    drop(state);
                    self.shared.receiver.wake();
                    return Ok(());
                }
                // Registered before the lock is released, so a receive (or a close) after this
                // point cannot be missed.
                notified.as_mut().enable();
                state.waiting += 1;
                Waiting {
                    shared: &self.shared,
                }
            };
            notified.await;
            drop(waiting);
            item = match self.try_send(item) {
                Err(SendError::Full(item)) => item,
                done => return done,
            };
        }
    }

    /// Queues `item` if there is room right now.
    pub(crate) fn try_send(&self, item: T) -> Result<(), SendError<T>> {
        let mut state = self.shared.state();
        if state.closed {
            return Err(SendError::Closed(item));
        }
        if state.items.len() >= self.shared.bound {
            return Err(SendError::Full(item));
        }
        state.items.push_back(item);
        drop(state);
        self.shared.receiver.wake();
        Ok(())
    }

    /// Whether the receiver stopped taking items.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Free slots right now.
    pub(crate) fn capacity(&self) -> usize {
        let state = self.shared.state();
        if state.closed {
            0
        } else {
            self.shared.bound - state.items.len()
        }
    }
}

impl<T> Receiver<T> {
    /// The next item, without registering for a wake-up.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let mut state = self.shared.state();
        let item = state.items.pop_front();
        if state.items.is_empty() && state.items.capacity() > KEEP_CAPACITY {
            state.items = VecDeque::new();
        }
        let wake_sender = item.is_some() && state.waiting > 0;
        drop(state);
        if wake_sender {
            self.shared.room.notify_one();
        }
        item
    }

    /// The next item, or a registration to be woken when one is queued.
    pub(crate) fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        if let Some(item) = self.try_recv() {
            return Poll::Ready(Some(item));
        }
        self.shared.receiver.register(cx.waker());
        // An item may have been queued between the first look and the registration.
        match self.try_recv() {
            Some(item) => Poll::Ready(Some(item)),
            None => Poll::Pending,
        }
    }

    /// Drops the wake-up registration: while the connection is running anyway, a handler's own
    /// replies need not schedule it again.
    pub(crate) fn unwatch(&mut self) {
        drop(self.shared.receiver.take());
    }

    /// Refuses further items; senders waiting for room are released with an error. Items
    /// already queued can still be received.
    pub(crate) fn close(&mut self) {
        {
            let mut state = self.shared.state();
            if state.closed {
                return;
            }
            state.closed = true;
        }
        self.shared.closed.store(true, Ordering::Release);
        self.shared.room.notify_waiters();
    }

    /// Whether [`close`](Self::close) was called.
    #[cfg_attr(not(feature = "client"), allow(dead_code))]
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::time::Duration;

    #[tokio::test]
    async fn bounded_fifo_with_waiting_senders() {
        let (sender, mut receiver) = channel::<u32>(2);
        sender.send(1).await.expect("room");
        sender.try_send(2).expect("room");
        assert!(matches!(sender.try_send(3), Err(SendError::Full(3))));
        assert_eq!(sender.capacity(), 0);
        let waiting = tokio::spawn({
            let sender = sender.clone();
            async move { sender.send(3).await.is_ok() }
        });
        assert_eq!(poll_fn(|cx| receiver.poll_recv(cx)).await, Some(1));
        assert!(
            waiting.await.expect("task"),
            "room freed by the receive lets the waiter in"
        );
        assert_eq!(receiver.try_recv(), Some(2));
        assert_eq!(receiver.try_recv(), Some(3));
        assert_eq!(receiver.try_recv(), None);
    }

    #[tokio::test]
    async fn closing_releases_waiters_and_refuses_sends() {
        let (sender, mut receiver) = channel::<u32>(1);
        sender.send(1).await.expect("room");
        let waiting = tokio::spawn({
            let sender = sender.clone();
            async move { sender.send(2).await }
        });
        tokio::task::yield_now().await;
        receiver.close();
        assert!(matches!(
            waiting.await.expect("task"),
            Err(SendError::Closed(2))
        ));
        assert!(sender.is_closed());
        assert!(matches!(sender.try_send(3), Err(SendError::Closed(3))));
        assert_eq!(
            receiver.try_recv(),
            Some(1),
            "what was queued is still there"
        );
        drop(receiver);
        assert!(matches!(sender.send(4).await, Err(SendError::Closed(4))));
    }

    #[tokio::test]
    async fn cancelled_waiter_stops_counting_and_others_still_get_room() {
        let (sender, mut receiver) = channel::<u32>(1);
        sender.try_send(1).expect("room");
        // A waiter that gives up (its send future dropped) must not keep a wake-up for itself.
        let gave_up = tokio::time::timeout(Duration::from_millis(20), sender.send(2)).await;
        assert!(gave_up.is_err(), "the queue is full, so the send waits");
        assert_eq!(sender.shared.state().waiting, 0);
        let waiting = tokio::spawn({
            let sender = sender.clone();
            async move { sender.send(3).await.is_ok() }
        });
        while sender.shared.state().waiting == 0 {
            tokio::task::yield_now().await;
        }
        assert_eq!(receiver.try_recv(), Some(1));
        assert!(
            waiting.await.expect("task"),
            "the freed slot goes to the waiter"
        );
        assert_eq!(receiver.try_recv(), Some(3));
    }

    #[tokio::test]
    async fn many_waiting_senders_all_get_through_in_their_own_order() {
        let (sender, mut receiver) = channel::<(u32, u32)>(2);
        let mut senders = Vec::new();
        for who in 0..4 {
            let sender = sender.clone();
            senders.push(tokio::spawn(async move {
                for seq in 0..50 {
                    sender.send((who, seq)).await.expect("open");
                }
            }));
        }
        let mut next = [0u32; 4];
        let mut received = 0;
        while received < 200 {
            let (who, seq) = poll_fn(|cx| receiver.poll_recv(cx)).await.expect("open");
            assert_eq!(
                seq, next[who as usize],
                "one sender's messages keep their order"
            );
            next[who as usize] += 1;
            received += 1;
        }
        for task in senders {
            task.await.expect("sender");
        }
        assert_eq!(sender.capacity(), 2);
    }

    #[test]
    fn storage_is_released_after_a_burst() {
        let (sender, mut receiver) = channel::<u64>(1000);
        for value in 0..500 {
            sender.try_send(value).expect("room");
        }
        while receiver.try_recv().is_some() {}
        assert_eq!(sender.shared.state().items.capacity(), 0);
    }
}

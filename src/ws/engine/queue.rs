//! A connection's bounded outgoing queue.
//!
//! tokio's bounded mpsc allocates its first block of 32 slots when the channel is created, about
//! 1.8 KiB per connection before anything is sent. This queue allocates only while messages are
//! waiting and gives the memory back once it drains, which matters when most of ten thousand
//! connections are idle. The bound is a semaphore, so a full queue makes senders wait in FIFO
//! order (or makes `try_send` fail) exactly as with mpsc.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use tokio::sync::{Semaphore, TryAcquireError};

/// Room kept after draining; beyond it the storage is released.
const KEEP_CAPACITY: usize = 16;

struct Shared<T> {
    items: Mutex<VecDeque<T>>,
    /// One permit per free slot.
    room: Semaphore,
    receiver: AtomicWaker,
    closed: AtomicBool,
}

impl<T> Shared<T> {
    fn items(&self) -> MutexGuard<'_, VecDeque<T>> {
        self.items.lock().unwrap_or_else(PoisonError::into_inner)
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
        items: Mutex::new(VecDeque::new()),
        room: Semaphore::new(bound.max(1)),
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

impl<T> Sender<T> {
    /// Queues `item`, waiting for room.
    pub(crate) async fn send(&self, item: T) -> Result<(), SendError<T>> {
        match self.shared.room.acquire().await {
            Ok(permit) => permit.forget(),
            Err(_) => return Err(SendError::Closed(item)),
        }
        self.push(item);
        Ok(())
    }

    /// Queues `item` if there is room right now.
    pub(crate) fn try_send(&self, item: T) -> Result<(), SendError<T>> {
        match self.shared.room.try_acquire() {
            Ok(permit) => permit.forget(),
            Err(TryAcquireError::NoPermits) => return Err(SendError::Full(item)),
            Err(TryAcquireError::Closed) => return Err(SendError::Closed(item)),
        }
        self.push(item);
        Ok(())
    }

    fn push(&self, item: T) {
        self.shared.items().push_back(item);
        self.shared.receiver.wake();
    }

    /// Whether the receiver stopped taking items.
    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }

    /// Free slots right now.
    pub(crate) fn capacity(&self) -> usize {
        self.shared.room.available_permits()
    }
}

impl<T> Receiver<T> {
    /// The next item, without registering for a wake-up.
    pub(crate) fn try_recv(&mut self) -> Option<T> {
        let item = {
            let mut items = self.shared.items();
            let item = items.pop_front();
            if items.is_empty() && items.capacity() > KEEP_CAPACITY {
                *items = VecDeque::new();
            }
            item
        };
        if item.is_some() {
            self.shared.room.add_permits(1);
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
        self.shared.closed.store(true, Ordering::Release);
        self.shared.room.close();
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

    #[test]
    fn storage_is_released_after_a_burst() {
        let (sender, mut receiver) = channel::<u64>(1000);
        for value in 0..500 {
            sender.try_send(value).expect("room");
        }
        while receiver.try_recv().is_some() {}
        assert_eq!(sender.shared.items().capacity(), 0);
    }
}

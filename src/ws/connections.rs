//! The open WebSocket connections of one server: counted, and closed together on shutdown.
//!
//! ```no_run
//! use std::time::Duration;
//! use wsgrpc::ws::{handler_fn, serve_connection_with, Config, Connections, Message, SessionHandle, Upgrade};
//!
//! # async fn example(io: tokio::net::TcpStream, upgrade: Upgrade) {
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! let connections = Connections::new();
//! // Counted from here, so a limit sees connections that are still shaking hands.
//! let guard = connections.open();
//! tokio::spawn(async move {
//!     serve_connection_with(io, upgrade, &echo, &Config::default(), guard).await;
//! });
//! // Later: close 1001 to everyone, wait up to 10 s for their close handshakes, drop the rest.
//! let all_closed_in_time = connections.shutdown(Duration::from_secs(10)).await;
//! # }
//! ```
//!
//! [`Server`](crate::ws::Server) keeps one of these for its connections. A server that upgrades
//! connections itself (hyper, axum, the one-port [`serve`](crate::serve) module) keeps one too and
//! passes a [`ConnectionGuard`] to [`serve_connection_with`](crate::ws::serve_connection_with), so
//! its WebSockets get the same graceful shutdown: close 1001, a bounded wait for the close
//! handshakes, then the rest dropped.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{oneshot, watch};

/// A set of live WebSocket connections; cheap to clone (clones share the set).
#[derive(Clone, Default)]
pub struct Connections {
    shared: Arc<Shared>,
}

impl fmt::Debug for Connections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connections")
            .field("count", &self.count())
            .field("closing", &self.is_closing())
            .finish()
    }
}

#[derive(Debug)]
struct Shared {
    live: watch::Sender<usize>,
    /// Set when the wait for close handshakes is over: every connection still open ends at once.
    abort: watch::Sender<bool>,
    registry: Mutex<Registry>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            live: watch::Sender::new(0),
            abort: watch::Sender::new(false),
            registry: Mutex::default(),
        }
    }
}

/// Shutdown signals of the connections past their handshake.
#[derive(Debug, Default)]
struct Registry {
    next_slot: u64,
    closing: bool,
    signals: HashMap<u64, oneshot::Sender<()>>,
}

impl Connections {
    /// An empty set.
    pub fn new() -> Self {
        Connections::default()
    }

    /// Connections counted now: from [`open`](Self::open) until their guard is dropped.
    pub fn count(&self) -> usize {
        *self.shared.live.borrow()
    }

    /// A receiver that sees every change of [`count`](Self::count), to wait for a given count
    /// without polling.
    pub fn watch(&self) -> watch::Receiver<usize> {
        self.shared.live.subscribe()
    }

    /// Counts one more connection until the returned guard is dropped. Take it before the
    /// handshake, so a connection limit also sees connections still shaking hands.
    pub fn open(&self) -> ConnectionGuard {
        self.shared.live.send_modify(|live| *live += 1);
        ConnectionGuard {
            shared: self.shared.clone(),
            slot: None,
        }
    }

    /// Whether [`close_all`](Self::close_all) (or [`shutdown`](Self::shutdown)) was called.
    pub fn is_closing(&self) -> bool {
        self.shared
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closing
    }

    /// Sends close 1001 (`server shutting down`) to every open connection, and to every
    /// connection that finishes its handshake from now on. Returns how many were open.
    pub fn close_all(&self) -> usize {
        let signals = {
            let mut registry = self
                .shared
                .registry
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            registry.closing = true;
            std::mem::take(&mut registry.signals)
        };
        let count = signals.len();
        for signal in signals.into_values() {
            let _ = signal.send(());
        }
        count
    }

    /// Graceful shutdown: [`close_all`](Self::close_all), wait up to `timeout` for every
    /// connection to finish its close handshake and `on_close` hook, then end the ones left at
    /// once (their `on_close` does not run). Returns whether all of them finished in time.
    pub async fn shutdown(&self, timeout: Duration) -> bool {
        self.close_all();
        let mut live = self.watch();
        let finished = tokio::time::timeout(timeout, async {
            let _ = live.wait_for(|live| *live == 0).await.map(drop);
        })
        .await
        .is_ok();
        if !finished {
            tracing::warn!(
                remaining = self.count(),
                "shutdown timeout passed; dropping remaining websocket connections"
            );
            self.shared.abort.send_replace(true);
        }
        finished
    }
}

/// One connection counted in its [`Connections`] until dropped; pass it to
/// [`serve_connection_with`](crate::ws::serve_connection_with).
pub struct ConnectionGuard {
    shared: Arc<Shared>,
    slot: Option<u64>,
}

impl fmt::Debug for ConnectionGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionGuard")
            .field("registered", &self.slot.is_some())
            .finish()
    }
}

impl ConnectionGuard {
    /// Registers the connection for the shutdown broadcast. After shutdown began the signal is
    /// already fired, so a connection that finishes its handshake late still closes with 1001.
    pub(crate) fn register(&mut self) -> oneshot::Receiver<()> {
        let (sender, receiver) = oneshot::channel();
        let mut registry = self
            .shared
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if registry.closing {
            let _ = sender.send(());
        } else {
            let slot = registry.next_slot;
            registry.next_slot += 1;
            registry.signals.insert(slot, sender);
            self.slot = Some(slot);
        }
        receiver
    }

    /// Completes when the shutdown's wait is over and this connection must end without more I/O.
    pub(crate) fn aborted(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut abort = self.shared.abort.subscribe();
        async move {
            let _ = abort.wait_for(|abort| *abort).await.map(drop);
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            self.shared
                .registry
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .signals
                .remove(&slot);
        }
        self.shared.live.send_modify(|live| *live -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn guards_count_and_late_registrations_see_the_shutdown() {
        let connections = Connections::new();
        let mut early = connections.open();
        let mut signal = early.register();
        let _counted = connections.open();
        assert_eq!(connections.count(), 2);
        assert_eq!(connections.close_all(), 1);
        assert!(signal.try_recv().is_ok());
        let mut late = connections.open();
        assert!(late.register().try_recv().is_ok());
        drop((early, late));
        assert_eq!(connections.count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_aborts_what_is_left_after_the_timeout() {
        let connections = Connections::new();
        let guard = connections.open();
        let aborted = guard.aborted();
        assert!(!connections.shutdown(Duration::from_secs(5)).await);
        aborted.await;
    }
}

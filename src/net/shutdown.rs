//! Graceful shutdown as one small type: [`Shutdown`], which every server, accept loop and
//! connection of the crate listens to, and [`shutdown_signal`], the process being asked to stop.
//!
//! A server's `serve(listener, signal)` turns its `signal` future into a [`Shutdown`] trigger; the
//! accept loop stops on it, TLS handshakes still in progress are dropped, HTTP/2 connections send
//! GOAWAY and WebSockets close with 1001. One [`Shutdown`] can also stop several servers at once:
//! pass [`Shutdown::triggered`] as each one's signal.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

/// A graceful-shutdown trigger shared by everything that must stop together. Cheap to clone; every
/// clone triggers and observes the same shutdown.
///
/// ```
/// # async fn example() {
/// let shutdown = wsgrpc::Shutdown::new();
/// let signal = shutdown.triggered(); // pass as a server's shutdown future
/// assert!(!shutdown.is_triggered());
/// shutdown.trigger();
/// signal.await; // resolves at once now
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Shutdown {
    state: Arc<watch::Sender<bool>>,
}

impl Shutdown {
    /// A shutdown that has not been triggered.
    pub fn new() -> Self {
        Shutdown {
            state: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Starts the shutdown; everything waiting on [`triggered`](Self::triggered) wakes. Calling it
    /// again does nothing.
    pub fn trigger(&self) {
        self.state
            .send_if_modified(|triggered| !std::mem::replace(triggered, true));
    }

    /// Whether [`trigger`](Self::trigger) was called.
    pub fn is_triggered(&self) -> bool {
        *self.state.borrow()
    }

    /// Completes once the shutdown is triggered (at once if it already was). Owns what it needs,
    /// so it can be moved into a task or passed as a server's shutdown signal.
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        // The future keeps the sender alive, so it waits for a trigger even after every
        // `Shutdown` clone is gone, instead of taking "nobody left to trigger" for one.
        let sender = self.state.clone();
        let mut state = sender.subscribe();
        async move {
            let _keep = sender;
            let _ = state.wait_for(|triggered| *triggered).await.map(drop);
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

/// Completes on Ctrl-C, or on SIGTERM where there is one (what container runtimes and systemd send).
///
/// Pass it as the `shutdown` future of a server's `serve(listener, shutdown)` for a graceful
/// shutdown. If a signal handler cannot be installed, this never completes and logs why.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("ctrl-c received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}

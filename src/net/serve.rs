//! The accept loop every server runs: accept, socket options, TLS under a handshake timeout, one
//! task per connection, and the bounded drain at shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::task::JoinSet;

use super::listener::AcceptErrors;
use super::{Listener, Shutdown};

/// What a server does with the connections its accept loop hands it.
pub(crate) trait Connector: Send + Sync + 'static {
    /// What [`admit`](Self::admit) decides at accept time, before any I/O, handed to
    /// [`serve`](Self::serve) (a connection-count guard, say).
    type Ticket: Send + 'static;

    /// Decides at accept time whether the connection gets a task at all: `None` closes the socket
    /// at once, so a flood beyond a server's limits costs no task and no memory.
    fn admit(&self, peer: Option<SocketAddr>) -> Option<Self::Ticket>;

    /// Serves one connection (after TLS, if configured) until it ends. `shutdown` is the server's:
    /// a connection that outlives its trigger should wind down gracefully (GOAWAY, close 1001).
    fn serve<Io>(
        self: Arc<Self>,
        io: Io,
        peer: Option<SocketAddr>,
        ticket: Self::Ticket,
        shutdown: Shutdown,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
}

/// Per-socket settings of the accept loop.
#[derive(Clone)]
pub(crate) struct AcceptOptions {
    /// `TCP_NODELAY` on accepted TCP sockets.
    pub(crate) nodelay: bool,
    /// TCP keepalive probes on accepted TCP sockets, when wanted.
    pub(crate) keepalive: Option<super::TcpKeepalive>,
    /// The TLS acceptor when the server serves TLS.
    pub(crate) tls: Option<Tls>,
    /// Time a client gets to finish the TLS handshake.
    pub(crate) tls_handshake_timeout: Duration,
}

/// The TLS acceptor of a server, when it has one.
#[cfg(feature = "tls")]
pub(crate) type Tls = super::tls::Acceptor;
/// Without the `tls` feature a server has no acceptor: an uninhabited stand-in.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
pub(crate) enum Tls {}

/// Accepts connections from `listener` until `signal` completes (or `shutdown` is triggered
/// elsewhere), serving each in a task of `tasks`. Returns the listener, still open, and leaves
/// the rest of the shutdown to the caller, in its own order: health to NOT_SERVING first, say,
/// then closing the listener, then [`Shutdown::trigger`] so connections wind down, then
/// [`drain`].
pub(crate) async fn accept_until<L, C>(
    mut listener: L,
    connector: &Arc<C>,
    options: &AcceptOptions,
    signal: impl Future<Output = ()>,
    shutdown: &Shutdown,
    tasks: &mut JoinSet<()>,
) -> L
where
    L: Listener,
    C: Connector,
{
    let mut signal = pin!(signal);
    let mut stop = pin!(shutdown.triggered());
    let mut errors = AcceptErrors::default();
    if let Ok(address) = listener.local_addr() {
        tracing::info!(?address, tls = options.tls.is_some(), "listening");
    }
    'accept: loop {
        tokio::select! {
            () = &mut signal => break,
            () = &mut stop => break,
            // Reap finished connections so the set holds live ones only.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((io, peer)) => {
                    errors.reset();
                    let Some(ticket) = connector.admit(peer) else { continue };
                    if let Err(error) = L::configure(&io, options.nodelay) {
                        tracing::debug!(?peer, %error, "could not set socket options");
                    }
                    if let Some(keepalive) = &options.keepalive
                        && let Err(error) = L::set_keepalive(&io, keepalive)
                    {
                        tracing::debug!(?peer, %error, "could not set TCP keepalive");
                    }
                    match &options.tls {
                        // A plain connection's task is the connector's own future, with no
                        // wrapper keeping a second copy of the socket and its address.
                        None => {
                            tasks.spawn(connector.clone().serve(io, peer, ticket, shutdown.clone()));
                        }
                        Some(tls) => {
                            tasks.spawn(tls_connection(
                                io,
                                peer,
                                ticket,
                                connector.clone(),
                                tls.clone(),
                                options.tls_handshake_timeout,
                                shutdown.clone(),
                            ));
                        }
                    }
                }
                Err(error) => {
                    if let Some(pause) = errors.pause_after(&error) {
                        // Connections keep being reaped meanwhile (each that ends frees a
                        // descriptor), and a shutdown does not wait for the pause to end.
                        let mut pause = pin!(tokio::time::sleep(pause));
                        loop {
                            tokio::select! {
                                () = &mut pause => break,
                                () = &mut signal => break 'accept,
                                () = &mut stop => break 'accept,
                                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                            }
                        }
                    }
                }
            },
        }
    }
    listener
}

/// One accepted socket of a TLS server: the handshake under its timeout, then the connector.
async fn tls_connection<Io, C>(
    io: Io,
    peer: Option<SocketAddr>,
    ticket: C::Ticket,
    connector: Arc<C>,
    tls: Tls,
    tls_handshake_timeout: Duration,
    shutdown: Shutdown,
) where
    Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    C: Connector,
{
    #[cfg(feature = "tls")]
    {
        // Boxed: the handshake's state (a rustls connection mid-handshake) runs once and should
        // not enlarge the connection's task for as long as it lives.
        let stream = Box::pin(async {
            tokio::select! {
                // Boxed here too, so no TLS state is kept in this task's own frame.
                stream = tls.accept(io, tls_handshake_timeout, peer) => stream.map(Box::new),
                // A connection still shaking hands has nothing in flight: drop it at once.
                () = shutdown.triggered() => None,
            }
        })
        .await;
        if let Some(stream) = stream {
            connector.serve(stream, peer, ticket, shutdown).await;
        }
    }
    #[cfg(not(feature = "tls"))]
    {
        let _ = (io, peer, ticket, connector, tls_handshake_timeout, shutdown);
        match tls {}
    }
}

/// Waits up to `deadline` for every task of `tasks` to end, then aborts what is left.
pub(crate) async fn drain(tasks: &mut JoinSet<()>, deadline: Duration, what: &'static str) {
    let drained = tokio::time::timeout(deadline, async {
        while tasks.join_next().await.is_some() {}
    })
    .await
    .is_ok();
    if !drained {
        tracing::warn!(
            remaining = tasks.len(),
            ?deadline,
            "{what}: drain deadline passed, closing the remaining connections"
        );
        tasks.shutdown().await;
    }
}

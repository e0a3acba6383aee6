//! Where connections come from: any listener tokio has, behind one small trait, and the one policy
//! for accept errors.
//!
//! Every server in the crate takes an `impl Listener`: a [`tokio::net::TcpListener`] or, on Unix, a
//! [`tokio::net::UnixListener`]. Socket options (`TCP_NODELAY`, TCP keepalive) are applied through
//! the trait, so a Unix socket simply has none.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use tokio::io::{AsyncRead, AsyncWrite};

/// A source of accepted connections: what [`ws::Server`](crate::ws::Server),
/// [`GrpcServer`](crate::grpc::GrpcServer) and [`App`](crate::serve::App) serve on.
///
/// Implemented for [`tokio::net::TcpListener`] and, on Unix, [`tokio::net::UnixListener`]. Bind the
/// listener yourself (`TcpListener::bind("127.0.0.1:0")` picks a free port; read it back with
/// `local_addr` before handing the listener over).
pub trait Listener: Send + 'static {
    /// The stream of one accepted connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The listener's own address, for logs.
    type Addr: std::fmt::Debug + Send;

    /// Accepts the next connection and the peer's address (`None` where the transport has none,
    /// as on a Unix socket). Errors are left to the accept loop's policy: the errors of one
    /// connection are skipped, running out of file descriptors backs off.
    fn accept(&mut self)
    -> impl Future<Output = io::Result<(Self::Io, Option<SocketAddr>)>> + Send;

    /// The address the listener is bound to.
    fn local_addr(&self) -> io::Result<Self::Addr>;

    /// Applies per-socket options to an accepted stream. `nodelay` asks for `TCP_NODELAY`; streams
    /// without such an option ignore it.
    fn configure(io: &Self::Io, nodelay: bool) -> io::Result<()> {
        let _ = (io, nodelay);
        Ok(())
    }

    /// Turns on TCP keepalive probes on an accepted stream, as `keepalive` says; streams without
    /// such an option ignore it. Called after [`configure`](Self::configure), only by servers
    /// configured with keepalive (`grpc::Config::tcp_keepalive`).
    fn set_keepalive(io: &Self::Io, keepalive: &TcpKeepalive) -> io::Result<()> {
        let _ = (io, keepalive);
        Ok(())
    }
}

/// TCP keepalive probes on an accepted socket (`SO_KEEPALIVE`; `man 7 tcp`): the kernel probes a
/// connection that has been idle for [`idle`](Self::idle) and drops it after
/// [`retries`](Self::retries) unanswered probes [`interval`](Self::interval) apart. Finds peers that
/// vanished without closing (power loss, a NAT entry dropped) at no cost in user space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcpKeepalive {
    /// Idle time before the first probe (`TCP_KEEPIDLE`).
    pub idle: Duration,
    /// Time between probes (`TCP_KEEPINTVL`); `None` keeps the kernel's (Linux: 75 seconds).
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`); `None` keeps the
    /// kernel's (Linux: 9).
    pub retries: Option<u32>,
}

impl TcpKeepalive {
    /// Probes after `idle` seconds of silence, with the kernel's interval and retry count.
    pub fn new(idle: Duration) -> Self {
        TcpKeepalive {
            idle,
            interval: None,
            retries: None,
        }
    }

    /// Sets [`interval`](Self::interval).
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = Some(interval);
        self
    }

    /// Sets [`retries`](Self::retries).
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = Some(retries);
        self
    }

    /// The same settings in socket2's terms (interval and retries where the OS has them).
    fn to_socket2(self) -> socket2::TcpKeepalive {
        let keepalive = socket2::TcpKeepalive::new().with_time(self.idle);
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "netbsd",
            target_os = "windows"
        ))]
        let keepalive = match self.interval {
            Some(interval) => keepalive.with_interval(interval),
            None => keepalive,
        };
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_vendor = "apple",
            target_os = "freebsd",
            target_os = "netbsd"
        ))]
        let keepalive = match self.retries {
            Some(retries) => keepalive.with_retries(retries),
            None => keepalive,
        };
        keepalive
    }
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, peer) = tokio::net::TcpListener::accept(self).await?;
        Ok((stream, Some(peer)))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }

    fn configure(io: &Self::Io, nodelay: bool) -> io::Result<()> {
        io.set_nodelay(nodelay)
    }

    fn set_keepalive(io: &Self::Io, keepalive: &TcpKeepalive) -> io::Result<()> {
        socket2::SockRef::from(io).set_tcp_keepalive(&keepalive.to_socket2())
    }
}

#[cfg(unix)]
impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    async fn accept(&mut self) -> io::Result<(Self::Io, Option<SocketAddr>)> {
        let (stream, _peer) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, None))
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        tokio::net::UnixListener::local_addr(self)
    }
}

/// Backoff after an accept error that is about the listener, not one connection: starts here and
/// doubles while errors repeat.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// The longest pause between two accepts while, say, the process is out of file descriptors.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The one accept-error policy of every server (the backoff arithmetic is backon's).
///
/// Errors that concern only the connection being accepted (it was reset or aborted before
/// `accept` returned, a signal interrupted the call) are skipped at once. Anything else, above all
/// `EMFILE`/`ENFILE` (out of file descriptors) and `ENOBUFS`/`ENOMEM`, would fail again on an
/// immediate retry and turn the loop into a busy spin: it pauses, 10 ms at first, doubling up to 1 s
/// while errors repeat, and starts over after the next successful accept. Serving connections keep
/// running meanwhile, and each one that ends frees a descriptor.
#[derive(Debug, Default)]
pub(crate) struct AcceptErrors {
    backoff: Option<ExponentialBackoff>,
}

impl AcceptErrors {
    /// A connection was accepted: the next error starts the backoff over.
    pub(crate) fn reset(&mut self) {
        self.backoff = None;
    }

    /// How long to pause after `error` before accepting again (`None`: go on at once).
    pub(crate) fn pause_after(&mut self, error: &io::Error) -> Option<Duration> {
        if is_connection_error(error) {
            tracing::debug!(%error, "accept failed for one connection");
            return None;
        }
        let pause = self
            .backoff
            .get_or_insert_with(|| {
                ExponentialBuilder::default()
                    .with_min_delay(FIRST_BACKOFF)
                    .with_max_delay(MAX_BACKOFF)
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(MAX_BACKOFF);
        tracing::warn!(%error, ?pause, "accept failed; backing off");
        Some(pause)
    }
}

/// Errors about one connection only; the listener itself is fine.
fn is_connection_error(error: &io::Error) -> bool {
    use io::ErrorKind::{
        ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted, WouldBlock,
    };
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted | WouldBlock
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_errors_are_skipped_and_others_back_off_doubling_to_a_cap() {
        let mut errors = AcceptErrors::default();
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(errors.pause_after(&reset), None);
        // EMFILE: "Too many open files".
        let emfile = io::Error::from_raw_os_error(24);
        assert_eq!(errors.pause_after(&emfile), Some(FIRST_BACKOFF));
        assert_eq!(errors.pause_after(&emfile), Some(FIRST_BACKOFF * 2));
        for _ in 0..20 {
            errors.pause_after(&emfile);
        }
        assert_eq!(errors.pause_after(&emfile), Some(MAX_BACKOFF));
        errors.reset();
        assert_eq!(errors.pause_after(&emfile), Some(FIRST_BACKOFF));
    }
}

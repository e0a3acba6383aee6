//! The handling phase: a handler hook runs while the connection keeps writing.
//!
//! A hook that sends more than the outgoing queue holds would wait forever if nobody drained the
//! queue meanwhile, so the connection polls the hook and the write path together
//! ([`Connection::handle`]). Hooks are also where panics come from: [`contain`] turns one into
//! [`Error::HandlerPanic`], so only the panicking connection closes (with 1011).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite};

use super::connection::Connection;
use super::end::{End, abnormal};
use super::timers::TimerEvent;
use crate::error::Error;

/// Runs a handler hook, turning a panic into [`Error::HandlerPanic`] so only this connection pays.
pub(super) fn contain<T>(
    hook: impl Future<Output = crate::Result<T>>,
) -> impl Future<Output = crate::Result<T>> {
    // A combinator rather than an `async fn`: the hook's future is stored once, not once per
    // layer of async state, which keeps every connection's task smaller.
    AssertUnwindSafe(hook)
        .catch_unwind()
        .map(|outcome| match outcome {
            Ok(result) => result,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| text.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_owned());
                Err(Error::HandlerPanic(message))
            }
        })
}

pin_project_lite::pin_project! {
    /// A handler hook running on a connection; see [`Connection::handle`].
    pub(super) struct Handling<'a, 'c, 'q, S, F> {
        connection: &'a mut Connection<'c, 'q, S>,
        #[pin]
        hook: F,
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin, F: Future> Future for Handling<'_, '_, '_, S, F> {
    type Output = Result<F::Output, End>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        this.connection.poll_handling(this.hook, cx)
    }
}

impl<'c, 'q, S: AsyncRead + AsyncWrite + Unpin> Connection<'c, 'q, S> {
    /// Handling phase: runs a handler hook to completion while draining the outgoing queue.
    pub(super) fn handle<F: Future>(&mut self, hook: F) -> Handling<'_, 'c, 'q, S, F> {
        Handling {
            connection: self,
            hook,
        }
    }

    fn poll_handling<F: Future>(
        &mut self,
        mut hook: Pin<&mut F>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<F::Output, End>> {
        // A hook that sends a burst fills the queue; draining it right away lets the hook go on
        // without a round trip through the scheduler.
        for _ in 0..4 {
            if let Poll::Ready(output) = hook.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            match self.poll_write(cx) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(end) => return Poll::Ready(Err(end)),
            }
        }
        // A forced close exists for a peer that stopped reading, and the hook may be the one
        // waiting on that peer's full queue: it is cancelled rather than waited for.
        if let Poll::Ready(frame) = self.poll_forced_close(cx) {
            return Poll::Ready(Err(End::Close(frame)));
        }
        // The hook may wait on something else for a while: messages other tasks send meanwhile
        // should still go out.
        if let Err(end) = self.watch_queue(cx) {
            return Poll::Ready(Err(end));
        }
        match self.timers.poll(cx, self.reader.activity, true) {
            Poll::Ready(TimerEvent::WriteStalled) => Poll::Ready(Err(abnormal("write timed out"))),
            _ => Poll::Pending,
        }
    }
}

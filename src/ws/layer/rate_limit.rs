//! A per-connection message rate limit (token bucket).
//!
//! ```
//! use std::time::Duration;
//! use wsgrpc::ws::layer::{Excess, RateLimitLayer};
//! use wsgrpc::ws::{handler_fn, HandlerBuilder, Message, SessionHandle};
//!
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! // 10 messages a second on average, bursts of up to 20; beyond that, close with 1008.
//! let limit = RateLimitLayer::new(10, Duration::from_secs(1)).burst(20);
//! let handler = HandlerBuilder::new().layer(limit).handler(echo);
//! # let _ = handler;
//! // Or slow the peer down instead: the connection stops reading until a token is due.
//! let _ = RateLimitLayer::new(10, Duration::from_secs(1)).on_excess(Excess::Wait);
//! ```

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Result;
use crate::ws::{CloseCode, CloseReason, Handler, Layer, Message, Rejection, Session, Upgrade};

/// What happens to a message that arrives when its connection's bucket is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Excess {
    /// Close the connection with 1008 `rate limit exceeded` (after what is already queued); the
    /// message is not handled. The default.
    #[default]
    Close,
    /// Discard the message (logged at `DEBUG`); the connection goes on.
    Drop,
    /// Hold the message until a token is due, then handle it. The connection reads nothing in the
    /// meantime, so the peer is slowed by TCP backpressure instead of being refused.
    Wait,
}

/// Limits each connection's incoming message rate.
///
/// Each connection gets its own bucket of `burst` tokens, refilled at `messages` per `per`; every
/// message takes one. A message that finds the bucket empty is excess, and [`Excess`] says what
/// happens to it. The default, [`Excess::Close`], closes the connection with **1008** (policy
/// violation) and the reason `rate limit exceeded`, after the replies already queued.
///
/// The bucket lives in the session's extensions, created on the first message: no allocation per
/// message, and several rate limits stacked on one handler keep separate buckets.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    id: u64,
    /// Seconds to earn one token.
    interval: f64,
    burst: f64,
    excess: Excess,
}

impl RateLimitLayer {
    /// Allows `messages` per `per` on average, with bursts of up to `messages` (change with
    /// [`burst`](Self::burst)); excess closes the connection (change with
    /// [`on_excess`](Self::on_excess)).
    ///
    /// # Panics
    ///
    /// If `messages` or `per` is zero.
    pub fn new(messages: u32, per: Duration) -> Self {
        assert!(
            messages > 0 && !per.is_zero(),
            "a rate limit needs a positive rate"
        );
        // Each layer has its own buckets, so two limits stacked on one handler do not share one.
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        RateLimitLayer {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            interval: per.as_secs_f64() / f64::from(messages),
            burst: f64::from(messages),
            excess: Excess::Close,
        }
    }

    /// The most messages a connection may send at once after being quiet (the bucket's size, at
    /// least 1). Default: the `messages` of [`new`](Self::new).
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = f64::from(burst.max(1));
        self
    }

    /// What happens to excess messages. Default [`Excess::Close`].
    #[must_use]
    pub fn on_excess(mut self, excess: Excess) -> Self {
        self.excess = excess;
        self
    }

    /// Takes a token from `bucket`; on failure, how long until one is due.
    fn take(&self, bucket: &mut Bucket, now: Instant) -> Result<(), Duration> {
        let earned = now.duration_since(bucket.updated).as_secs_f64() / self.interval;
        bucket.tokens = (bucket.tokens + earned).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (1.0 - bucket.tokens) * self.interval,
            ))
        }
    }
}

impl<H> Layer<H> for RateLimitLayer {
    type Handler = RateLimit<H>;

    fn layer(&self, inner: H) -> RateLimit<H> {
        RateLimit::new(inner, self.clone())
    }
}

/// A handler whose connections are rate limited; made by [`RateLimitLayer`].
#[derive(Debug, Clone)]
pub struct RateLimit<H> {
    inner: H,
    layer: RateLimitLayer,
}

impl<H> RateLimit<H> {
    /// Limits the connections of `inner` as `layer` says.
    pub fn new(inner: H, layer: RateLimitLayer) -> Self {
        RateLimit { inner, layer }
    }

    /// The wrapped handler.
    pub fn get_ref(&self) -> &H {
        &self.inner
    }

    /// Unwraps the handler.
    pub fn into_inner(self) -> H {
        self.inner
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of one connection, one per rate limit layer (almost always exactly one).
#[derive(Debug, Default)]
struct Buckets(Vec<(u64, Bucket)>);

impl<H: Handler> Handler for RateLimit<H> {
    fn on_upgrade(
        &self,
        upgrade: &mut Upgrade,
    ) -> impl Future<Output = Result<(), Rejection>> + Send {
        self.inner.on_upgrade(upgrade)
    }

    fn on_open(&self, session: &mut Session) -> impl Future<Output = Result<()>> + Send {
        self.inner.on_open(session)
    }

    async fn on_message(&self, session: &mut Session, message: Message) -> Result<()> {
        let now = Instant::now();
        let buckets = &mut session.extensions_mut().get_or_default::<Buckets>().0;
        let bucket = match buckets.iter().position(|(id, _)| *id == self.layer.id) {
            Some(index) => &mut buckets[index].1,
            None => {
                buckets.push((
                    self.layer.id,
                    Bucket {
                        tokens: self.layer.burst,
                        updated: now,
                    },
                ));
                let last = buckets.len() - 1;
                &mut buckets[last].1
            }
        };
        if let Err(wait) = self.layer.take(bucket, now) {
            match self.layer.excess {
                Excess::Close => {
                    tracing::debug!(id = %session.id(), "message rate limit exceeded; closing with 1008");
                    // Non-waiting, so an abusive peer that also stopped reading cannot hold us.
                    let _ = session.try_close(CloseCode::Policy, "rate limit exceeded");
                    return Ok(());
                }
                Excess::Drop => {
                    tracing::debug!(id = %session.id(), "message rate limit exceeded; message dropped");
                    return Ok(());
                }
                Excess::Wait => {
                    // The token earned while sleeping is spent on this message.
                    bucket.tokens = 0.0;
                    bucket.updated = now + wait;
                    tokio::time::sleep(wait).await;
                }
            }
        }
        self.inner.on_message(session, message).await
    }

    fn on_close(
        &self,
        session: &mut Session,
        reason: CloseReason,
    ) -> impl Future<Output = ()> + Send {
        self.inner.on_close(session, reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn bucket_refills_at_the_rate_up_to_the_burst() {
        let layer = RateLimitLayer::new(2, Duration::from_secs(1)).burst(3);
        let start = Instant::now();
        let mut bucket = Bucket {
            tokens: 3.0,
            updated: start,
        };
        for _ in 0..3 {
            assert!(layer.take(&mut bucket, start).is_ok());
        }
        assert_eq!(
            layer.take(&mut bucket, start),
            Err(Duration::from_millis(500))
        );
        assert!(
            layer
                .take(&mut bucket, start + Duration::from_millis(500))
                .is_ok()
        );
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(layer.take(&mut bucket, later).is_ok());
        }
        assert!(layer.take(&mut bucket, later).is_err());
    }
}

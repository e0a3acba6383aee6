//! A per-connection message rate limit (token bucket).
//!
//! The arithmetic is [`governor`]'s (GCRA, equivalent to a token bucket): one direct, unkeyed
//! `RateLimiter` per connection and layer, on tokio's clock so that [`Excess::Wait`] sleeps and
//! paused-time tests agree with it. (A limit on upgrades per client needs a keyed limiter; this
//! one counts one connection's messages.)
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
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
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
/// The bucket (a governor `RateLimiter`) lives in the session's extensions, created on
/// the connection's first message, when it is still full: no allocation per message, and several
/// rate limits stacked on one handler keep separate buckets. The refill interval is `per /
/// messages`, in whole nanoseconds.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    id: u64,
    /// One token per `per / messages`, at most `burst` of them.
    quota: Quota,
    excess: Excess,
}

impl RateLimitLayer {
    /// Allows `messages` per `per` on average, with bursts of up to `messages` (change with
    /// [`burst`](Self::burst)); excess closes the connection (change with
    /// [`on_excess`](Self::on_excess)).
    ///
    /// # Panics
    ///
    /// If `messages` is zero or `per / messages` is under one nanosecond (zero `per` included).
    pub fn new(messages: u32, per: Duration) -> Self {
        let burst = NonZeroU32::new(messages);
        let quota =
            burst.and_then(|burst| Some(Quota::with_period(per / burst.get())?.allow_burst(burst)));
        let Some(quota) = quota else {
            panic!("a rate limit needs a positive rate, got {messages} per {per:?}");
        };
        // Each layer has its own buckets, so two limits stacked on one handler do not share one.
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        RateLimitLayer {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            quota,
            excess: Excess::Close,
        }
    }

    /// The most messages a connection may send at once after being quiet (the bucket's size, at
    /// least 1). Default: the `messages` of [`new`](Self::new).
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.quota = self
            .quota
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        self
    }

    /// What happens to excess messages. Default [`Excess::Close`].
    #[must_use]
    pub fn on_excess(mut self, excess: Excess) -> Self {
        self.excess = excess;
        self
    }

    /// A full bucket for one connection, starting now.
    fn bucket(&self) -> Bucket {
        RateLimiter::direct_with_clock(
            self.quota,
            TokioClock {
                origin: Instant::now(),
            },
        )
    }
}

/// governor's clock on tokio's time (time since the bucket was made), so that a paused runtime
/// drives the bucket as it drives `Excess::Wait`'s sleep.
#[derive(Debug, Clone)]
struct TokioClock {
    origin: Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// One connection's bucket for one layer.
type Bucket = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// Takes a token from `bucket`; on failure, how long until one is due.
fn take(bucket: &Bucket, clock: &TokioClock) -> Result<(), Duration> {
    bucket
        .check()
        .map_err(|not_until| not_until.wait_time_from(clock.now()))
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
        let buckets = &mut session.extensions_mut().get_or_default::<Buckets>().0;
        let index = match buckets.iter().position(|(id, _)| *id == self.layer.id) {
            Some(index) => index,
            None => {
                buckets.push((self.layer.id, self.layer.bucket()));
                buckets.len() - 1
            }
        };
        let bucket = &buckets[index].1;
        while let Err(wait) = take(bucket, bucket.clock()) {
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
                // Sleeps until the token is due, then takes it (the loop's next check).
                Excess::Wait => tokio::time::sleep(wait).await,
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
        let bucket = layer.bucket();
        let clock = bucket.clock();
        for _ in 0..3 {
            assert!(take(&bucket, clock).is_ok());
        }
        assert_eq!(take(&bucket, clock), Err(Duration::from_millis(500)));
        tokio::time::advance(Duration::from_millis(499)).await;
        assert_eq!(take(&bucket, clock), Err(Duration::from_millis(1)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(take(&bucket, clock).is_ok());
        // A long pause refills only up to the burst.
        tokio::time::advance(Duration::from_secs(60)).await;
        for _ in 0..3 {
            assert!(take(&bucket, clock).is_ok());
        }
        assert!(take(&bucket, clock).is_err());
    }

    #[test]
    #[should_panic(expected = "a rate limit needs a positive rate")]
    fn a_zero_rate_is_refused() {
        let _ = RateLimitLayer::new(0, Duration::from_secs(1));
    }
}

//! A keyed rate limit on upgrades: how many WebSocket connections one client may open.
//!
//! ```
//! use std::time::Duration;
//! use http::StatusCode;
//! use wsgrpc::ws::guard::{AuthLayer, UpgradeRateLimitLayer};
//! use wsgrpc::ws::{handler_fn, HandlerBuilder, Message, Rejection, SessionHandle};
//!
//! #[derive(Clone, PartialEq, Eq, Hash)]
//! struct User(String);
//!
//! let echo = handler_fn(|session: SessionHandle, message: Message| async move {
//!     session.send(message).await
//! });
//! let check_token = |token: String| async move {
//!     match token.as_str() {
//!         "let-me-in" => Ok(User("ann".to_owned())),
//!         _ => Err(Rejection::new(StatusCode::FORBIDDEN, "unknown token\n")),
//!     }
//! };
//! let handler = HandlerBuilder::new()
//!     // Outermost: 30 upgrades a minute per client IP address, before any token is checked.
//!     .layer(UpgradeRateLimitLayer::new(30, Duration::from_secs(60)))
//!     .layer(AuthLayer::new(check_token))
//!     // After the auth guard: 5 upgrades a minute per user, whatever address they come from.
//!     .layer(
//!         UpgradeRateLimitLayer::new(5, Duration::from_secs(60))
//!             .key_by(|upgrade| upgrade.extensions().get::<User>().cloned()),
//!     )
//!     .handler(echo);
//! # let _ = handler;
//! ```
//!
//! The arithmetic is [`governor`]'s GCRA (a token bucket without a timer): each key may open
//! `burst` connections at once, and earns one more every `per / upgrades`. Not to be confused
//! with [`layer::RateLimitLayer`](crate::ws::layer::RateLimitLayer), which limits the messages
//! of each open connection.

use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use http::header::RETRY_AFTER;
use http::{HeaderValue, StatusCode};

use crate::ws::guard::pass_through_after_upgrade;
use crate::ws::{Handler, Layer, Rejection, Upgrade};

/// Keys tracked before idle ones are pruned; see [`UpgradeRateLimitLayer::max_keys`].
const DEFAULT_MAX_KEYS: usize = 100_000;

/// How often pruning may run at most, so a full table cannot turn every upgrade into a scan.
const PRUNE_INTERVAL: Duration = Duration::from_secs(1);

type Limiter<K> = RateLimiter<K, HashMapStateStore<K>, DefaultClock>;
type KeyFn<K> = dyn Fn(&Upgrade) -> Option<K> + Send + Sync;

/// Limits how often each client may open a connection: `429 Too Many Requests` with
/// `Retry-After` beyond the limit.
///
/// The key is the client's IP address ([`Upgrade::peer_addr`]) unless [`key_by`](Self::key_by)
/// derives another (an authenticated user from the extensions a guard put there, which needs
/// that guard to run first, i.e. to be layered outside this one). A request without a key (no
/// peer address, as on a Unix socket; your function returned `None`) is not limited.
///
/// Memory is bounded: the state of every key seen recently lives in one table of at most
/// [`max_keys`](Self::max_keys) entries (default 100,000; a few dozen bytes each). When it is
/// full, keys whose bucket has refilled completely (governor's `retain_recent`) are dropped, at
/// most once a second. When that frees nothing (more distinct clients in one refill period
/// than the table holds, a distributed flood) new upgrades get `503 Service Unavailable` with
/// `Retry-After` until keys age out, instead of the table growing.
///
/// Clones share the same table, and so do all handlers made by one layer.
pub struct UpgradeRateLimitLayer<K: Hash + Eq + Clone = IpAddr> {
    quota: Quota,
    max_keys: usize,
    key: Arc<KeyFn<K>>,
    state: Arc<State<K>>,
}

struct State<K: Hash + Eq + Clone> {
    limiter: Limiter<K>,
    last_prune: Mutex<Option<Instant>>,
}

impl<K: Hash + Eq + Clone> Clone for UpgradeRateLimitLayer<K> {
    fn clone(&self) -> Self {
        UpgradeRateLimitLayer {
            quota: self.quota,
            max_keys: self.max_keys,
            key: self.key.clone(),
            state: self.state.clone(),
        }
    }
}

impl<K: Hash + Eq + Clone> fmt::Debug for UpgradeRateLimitLayer<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeRateLimitLayer")
            .field("quota", &self.quota)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl UpgradeRateLimitLayer<IpAddr> {
    /// Allows `upgrades` per `per` from each client IP address, in bursts of up to `upgrades`
    /// (change with [`burst`](Self::burst)).
    ///
    /// # Panics
    ///
    /// If `upgrades` or `per` is zero.
    pub fn new(upgrades: u32, per: Duration) -> Self {
        let burst = NonZeroU32::new(upgrades).expect("a rate limit needs a positive rate");
        let quota = Quota::with_period(per / upgrades)
            .expect("a rate limit needs a positive period")
            .allow_burst(burst);
        UpgradeRateLimitLayer::build(
            quota,
            DEFAULT_MAX_KEYS,
            Arc::new(|upgrade: &Upgrade| upgrade.peer_addr().map(|peer| peer.ip())),
        )
    }
}

impl<K> UpgradeRateLimitLayer<K>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    fn build(quota: Quota, max_keys: usize, key: Arc<KeyFn<K>>) -> Self {
        UpgradeRateLimitLayer {
            quota,
            max_keys,
            key,
            state: Arc::new(State {
                limiter: RateLimiter::hashmap(quota),
                last_prune: Mutex::new(None),
            }),
        }
    }

    /// Keys the limit by what `key` derives from the upgrade request instead of the IP
    /// address; `None` means "not limited". Values a guard put into
    /// [`Upgrade::extensions`] are there only if that guard is layered outside this one.
    #[must_use]
    pub fn key_by<K2, F>(self, key: F) -> UpgradeRateLimitLayer<K2>
    where
        K2: Hash + Eq + Clone + Send + Sync + 'static,
        F: Fn(&Upgrade) -> Option<K2> + Send + Sync + 'static,
    {
        UpgradeRateLimitLayer::build(self.quota, self.max_keys, Arc::new(key))
    }

    /// The most upgrades one key may make at once after being quiet (at least 1). Default: the
    /// `upgrades` of [`new`](UpgradeRateLimitLayer::new).
    #[must_use]
    pub fn burst(self, burst: u32) -> Self {
        let quota = self
            .quota
            .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        UpgradeRateLimitLayer::build(quota, self.max_keys, self.key)
    }

    /// The most keys tracked at once (at least 1). Default 100,000. See the type's docs for what
    /// happens when the table is full.
    #[must_use]
    pub fn max_keys(self, max_keys: usize) -> Self {
        UpgradeRateLimitLayer::build(self.quota, max_keys.max(1), self.key)
    }

    /// Counts one upgrade against its key: `Ok` to go on, else the `429` (or `503` when the
    /// table is full of recent keys).
    pub fn check(&self, upgrade: &Upgrade) -> Result<(), Rejection> {
        let Some(key) = (self.key)(upgrade) else {
            return Ok(());
        };
        let limiter = &self.state.limiter;
        if limiter.len() >= self.max_keys && !self.prune() {
            tracing::warn!(
                keys = limiter.len(),
                "upgrade rate limit table full; refusing new upgrades"
            );
            return Err(refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                self.quota.replenish_interval(),
                "too many clients at once\n",
            ));
        }
        match limiter.check_key(&key) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                tracing::debug!(
                    peer = ?upgrade.peer_addr(),
                    ?wait,
                    "upgrade over the rate limit"
                );
                Err(refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    wait,
                    "too many connection attempts\n",
                ))
            }
        }
    }

    /// Drops keys whose bucket is full again; `true` if that made room. Runs at most once per
    /// [`PRUNE_INTERVAL`].
    fn prune(&self) -> bool {
        let limiter = &self.state.limiter;
        {
            let mut last = self
                .state
                .last_prune
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let now = Instant::now();
            if last.is_some_and(|last| now.duration_since(last) < PRUNE_INTERVAL) {
                return limiter.len() < self.max_keys;
            }
            *last = Some(now);
        }
        limiter.retain_recent();
        limiter.shrink_to_fit();
        limiter.len() < self.max_keys
    }
}

/// A refusal with `Retry-After` in whole seconds (RFC 9110 section 10.2.3), rounded up, at
/// least 1.
fn refusal(status: StatusCode, wait: Duration, body: &'static str) -> Rejection {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Rejection::new(status, body).with_header(RETRY_AFTER, HeaderValue::from(seconds.max(1)))
}

impl<H, K: Hash + Eq + Clone> Layer<H> for UpgradeRateLimitLayer<K> {
    type Handler = UpgradeRateLimit<H, K>;

    fn layer(&self, inner: H) -> UpgradeRateLimit<H, K> {
        UpgradeRateLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// A handler behind an upgrade rate limit; made by [`UpgradeRateLimitLayer`].
#[derive(Debug, Clone)]
pub struct UpgradeRateLimit<H, K: Hash + Eq + Clone = IpAddr> {
    inner: H,
    layer: UpgradeRateLimitLayer<K>,
}

impl<H, K: Hash + Eq + Clone> UpgradeRateLimit<H, K> {
    /// `inner` behind the limit of `layer`.
    pub fn new(inner: H, layer: UpgradeRateLimitLayer<K>) -> Self {
        UpgradeRateLimit { inner, layer }
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

impl<H, K> Handler for UpgradeRateLimit<H, K>
where
    H: Handler,
    K: Hash + Eq + Clone + Send + Sync + 'static,
{
    async fn on_upgrade(&self, upgrade: &mut Upgrade) -> Result<(), Rejection> {
        self.layer.check(upgrade)?;
        self.inner.on_upgrade(upgrade).await
    }

    pass_through_after_upgrade!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use std::net::SocketAddr;

    fn upgrade(peer: &str) -> Upgrade {
        let request = Request::get("/ws")
            .header("host", "example.com")
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .body(())
            .expect("valid");
        let peer: SocketAddr = peer.parse().expect("address");
        Upgrade::from_request(request, Some(peer)).expect("valid upgrade")
    }

    #[test]
    fn burst_then_429_with_retry_after_per_ip() {
        let layer = UpgradeRateLimitLayer::new(2, Duration::from_secs(60));
        let ann = upgrade("192.0.2.1:1000");
        assert!(layer.check(&ann).is_ok());
        assert!(layer.check(&upgrade("192.0.2.1:1001")).is_ok());
        let refused = layer.check(&ann).expect_err("third upgrade");
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        // One upgrade is earned every 30 s.
        let retry: u64 = refused.headers()[RETRY_AFTER]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert!((29..=30).contains(&retry), "{retry}");
        assert!(layer.check(&upgrade("192.0.2.2:1000")).is_ok());
    }

    #[test]
    fn a_full_table_of_recent_keys_refuses_new_upgrades() {
        let layer = UpgradeRateLimitLayer::new(1, Duration::from_secs(60)).max_keys(2);
        assert!(layer.check(&upgrade("192.0.2.1:1")).is_ok());
        assert!(layer.check(&upgrade("192.0.2.2:1")).is_ok());
        let refused = layer.check(&upgrade("192.0.2.3:1")).expect_err("full");
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.headers().contains_key(RETRY_AFTER));
        assert_eq!(layer.state.limiter.len(), 2);
    }

    #[test]
    fn idle_keys_are_pruned_to_make_room() {
        // A bucket refills in 1 ms, so keys are idle again almost at once.
        let layer = UpgradeRateLimitLayer::new(1, Duration::from_millis(1)).max_keys(2);
        assert!(layer.check(&upgrade("192.0.2.1:1")).is_ok());
        assert!(layer.check(&upgrade("192.0.2.2:1")).is_ok());
        // Waiting for governor's clock (real time), not for another task.
        let refilled = Instant::now() + Duration::from_millis(2);
        while Instant::now() < refilled {
            std::hint::spin_loop();
        }
        assert!(layer.check(&upgrade("192.0.2.3:1")).is_ok());
        assert!(layer.state.limiter.len() <= 2);
    }

    #[test]
    fn requests_without_a_key_are_not_limited() {
        let layer = UpgradeRateLimitLayer::new(1, Duration::from_secs(60))
            .key_by(|upgrade: &Upgrade| upgrade.query().map(str::to_owned));
        let anonymous = upgrade("192.0.2.1:1");
        for _ in 0..3 {
            assert!(layer.check(&anonymous).is_ok());
        }
    }
}

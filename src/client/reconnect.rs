//! When and how often a client reconnects, and what sending does while it is disconnected.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// Exponential backoff with jitter between reconnect attempts.
///
/// The n-th consecutive failed attempt waits a random time in `[d/2, d]`, where
/// `d = min(max_delay, initial_delay * multiplier^(n-1))` ("equal jitter": a fleet of clients that
/// lost the same server spreads out instead of reconnecting in lock step, and no wait is shorter
/// than half the nominal one). A successful connection resets the count.
///
/// ```
/// use std::time::Duration;
/// use wsgrpc::client::Reconnect;
///
/// let policy = Reconnect::default()
///     .initial_delay(Duration::from_millis(50))
///     .max_delay(Duration::from_secs(5))
///     .max_attempts(Some(20));
/// assert!(policy.delay(1) <= Duration::from_millis(50));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Reconnect {
    /// Nominal wait before the first retry. Default 100 ms.
    pub initial_delay: Duration,
    /// Cap on the nominal wait. Default 10 s.
    pub max_delay: Duration,
    /// Growth of the nominal wait per failed attempt. Default 2.
    pub multiplier: f64,
    /// Give up after this many consecutive failed attempts. Default `None` (never).
    pub max_attempts: Option<u32>,
    /// Give up when the connection has been down this long. Default `None` (never).
    pub max_elapsed: Option<Duration>,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
            multiplier: 2.0,
            max_attempts: None,
            max_elapsed: None,
        }
    }
}

impl Reconnect {
    /// Sets [`Reconnect::initial_delay`].
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Sets [`Reconnect::max_delay`].
    #[must_use]
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets [`Reconnect::multiplier`] (values below 1 are treated as 1).
    #[must_use]
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Sets [`Reconnect::max_attempts`].
    #[must_use]
    pub fn max_attempts(mut self, attempts: Option<u32>) -> Self {
        self.max_attempts = attempts;
        self
    }

    /// Sets [`Reconnect::max_elapsed`].
    #[must_use]
    pub fn max_elapsed(mut self, elapsed: Option<Duration>) -> Self {
        self.max_elapsed = elapsed;
        self
    }

    /// The nominal (un-jittered) wait before attempt number `attempt` (1-based).
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(64) as i32;
        let factor = self.multiplier.max(1.0).powi(exponent);
        let nominal = self.initial_delay.as_secs_f64() * factor;
        Duration::from_secs_f64(nominal.min(self.max_delay.as_secs_f64()))
    }

    /// A jittered wait before attempt number `attempt` (1-based), in `[nominal/2, nominal]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let nominal = self.nominal_delay(attempt);
        nominal / 2 + nominal.mul_f64(random_fraction() / 2.0)
    }

    /// Whether another attempt is allowed after `failed` consecutive failures, `down_for` after
    /// the connection was lost.
    pub fn allows(&self, failed: u32, down_for: Duration) -> bool {
        self.max_attempts.is_none_or(|max| failed < max)
            && self.max_elapsed.is_none_or(|max| down_for < max)
    }
}

/// A uniformly distributed number in `[0, 1)`. Jitter needs no cryptographic quality; the
/// standard library's randomly keyed hasher provides fresh bits without another dependency.
fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// What [`Client::send`](crate::client::Client::send) does while the client is not connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WhileDisconnected {
    /// Keep messages in the client's bounded outgoing queue and send them, in order, once the
    /// next connection is open. When the queue is full, `send` waits and `try_send` fails with
    /// [`Error::QueueFull`](crate::Error::QueueFull). Messages already taken from the queue by a
    /// connection that then broke are not resent (at-most-once delivery).
    #[default]
    Buffer,
    /// Fail at once with [`Error::NotConnected`](crate::Error::NotConnected).
    Fail,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nominal_delay_grows_then_caps() {
        let policy = Reconnect::default()
            .initial_delay(Duration::from_millis(100))
            .max_delay(Duration::from_secs(1));
        let delays: Vec<u128> = (1..=6)
            .map(|n| policy.nominal_delay(n).as_millis())
            .collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.nominal_delay(10_000), Duration::from_secs(1));
    }

    #[test]
    fn jittered_delay_stays_within_half_and_full_nominal() {
        let policy = Reconnect::default();
        for attempt in 1..20 {
            let nominal = policy.nominal_delay(attempt);
            for _ in 0..50 {
                let delay = policy.delay(attempt);
                assert!(
                    delay >= nominal / 2 && delay <= nominal,
                    "{delay:?} vs {nominal:?}"
                );
            }
        }
    }

    #[test]
    fn jitter_actually_varies() {
        let policy = Reconnect::default().initial_delay(Duration::from_secs(1));
        let distinct: std::collections::HashSet<_> = (0..20).map(|_| policy.delay(1)).collect();
        assert!(distinct.len() > 10);
    }

    #[test]
    fn limits_stop_retrying() {
        let by_count = Reconnect::default().max_attempts(Some(3));
        assert!(by_count.allows(2, Duration::ZERO));
        assert!(!by_count.allows(3, Duration::ZERO));
        let by_time = Reconnect::default().max_elapsed(Some(Duration::from_secs(5)));
        assert!(by_time.allows(1000, Duration::from_secs(4)));
        assert!(!by_time.allows(1, Duration::from_secs(5)));
    }
}

//! When and how often a client reconnects, and what sending does while it is disconnected.
//!
//! The delays come from [`backon`]'s exponential backoff; this module only maps the policy onto it.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Exponential backoff with jitter between reconnect attempts.
///
/// The n-th consecutive failed attempt waits a random time in `[d/2, d]`, where
/// `d = min(max_delay, initial_delay * multiplier^(n-1))` ("equal jitter": a fleet of clients that
/// lost the same server spreads out instead of reconnecting in lock step, and no wait is shorter
/// than half the nominal one). A successful connection resets the count.
///
/// The arithmetic is `backon`'s `ExponentialBuilder`, whose jitter adds a random fraction of the
/// delay to the delay itself (`[b, 2b)`); the policy hands it halved delays (`b = d/2`), which
/// gives the range above. backon computes in `f32` seconds, so a wait can be off its exact bound
/// by well under a microsecond.
///
/// ```
/// use std::time::Duration;
/// use wsgrpc::client::Reconnect;
///
/// let policy = Reconnect::default()
///     .initial_delay(Duration::from_millis(50))
///     .max_delay(Duration::from_secs(5))
///     .max_attempts(Some(20));
/// // The first wait is 25 to 50 ms.
/// assert!(policy.delay(1) >= Duration::from_millis(25));
/// assert_eq!(policy.nominal_delay(1), Duration::from_millis(50));
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

    /// The nominal (un-jittered) wait before attempt number `attempt` (1-based):
    /// `min(max_delay, initial_delay * multiplier^(attempt-1))`, the exponent capped at 64.
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let half = self.halved(false).build().nth(Self::step(attempt));
        half.unwrap_or(self.max_delay / 2) * 2
    }

    /// A jittered wait before attempt number `attempt` (1-based), in `[nominal/2, nominal]`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let delay = self.halved(true).build().nth(Self::step(attempt));
        delay.unwrap_or(self.max_delay)
    }

    /// The jittered waits before attempts 1, 2, ..., as many as [`max_attempts`](Self::max_attempts)
    /// allows (endless without it). [`max_elapsed`](Self::max_elapsed) is the caller's to check:
    /// it counts the time attempts take too, which backon's total-delay limit would not.
    pub(crate) fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        let builder = self.halved(true);
        let builder = match self.max_attempts {
            Some(max) => builder.with_max_times(usize::try_from(max).unwrap_or(usize::MAX)),
            None => builder,
        };
        builder.build()
    }

    /// backon's builder for half this policy's delays, endless; with jitter, its waits are in
    /// `[d/2, d)` of the nominal `d`.
    fn halved(&self, jitter: bool) -> ExponentialBuilder {
        let builder = ExponentialBuilder::new()
            .with_min_delay(self.initial_delay.min(self.max_delay) / 2)
            .with_max_delay(self.max_delay / 2)
            .with_factor(self.multiplier.max(1.0) as f32)
            .without_max_times();
        if jitter {
            builder.with_jitter()
        } else {
            builder
        }
    }

    /// The index of attempt number `attempt` in the delay sequence, capped where the old
    /// closed-form exponent was.
    fn step(attempt: u32) -> usize {
        attempt.saturating_sub(1).min(64) as usize
    }

    /// Whether another attempt is allowed after `failed` consecutive failures, `down_for` after
    /// the connection was lost.
    pub fn allows(&self, failed: u32, down_for: Duration) -> bool {
        self.max_attempts.is_none_or(|max| failed < max)
            && self.max_elapsed.is_none_or(|max| down_for < max)
    }
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
        // backon computes in f32 seconds: compare to the microsecond.
        let delays: Vec<u128> = (1..=6)
            .map(|n| (policy.nominal_delay(n).as_nanos() + 500) / 1000)
            .collect();
        assert_eq!(
            delays,
            [100_000, 200_000, 400_000, 800_000, 1_000_000, 1_000_000]
        );
        assert_eq!(policy.nominal_delay(10_000), Duration::from_secs(1));
        // An initial delay above the cap starts at the cap.
        let capped = Reconnect::default()
            .initial_delay(Duration::from_secs(30))
            .max_delay(Duration::from_secs(10));
        assert_eq!(capped.nominal_delay(1), Duration::from_secs(10));
    }

    #[test]
    fn jittered_delay_stays_within_half_and_full_nominal() {
        let policy = Reconnect::default();
        for attempt in 1..20 {
            let nominal = policy.nominal_delay(attempt);
            for _ in 0..50 {
                let delay = policy.delay(attempt);
                assert!(
                    delay >= nominal / 2 && delay <= nominal + F32_SLACK,
                    "{delay:?} vs {nominal:?}"
                );
            }
        }
    }

    /// How far backon's `f32` arithmetic may put a wait past its exact bound.
    const F32_SLACK: Duration = Duration::from_micros(1);

    #[test]
    fn the_sequence_matches_the_single_delays_and_stops_at_max_attempts() {
        let policy = Reconnect::default().max_attempts(Some(5));
        let delays: Vec<Duration> = policy.delays().collect();
        assert_eq!(delays.len(), 5);
        for (attempt, delay) in (1..).zip(&delays) {
            let nominal = policy.nominal_delay(attempt);
            assert!(*delay >= nominal / 2 && *delay <= nominal + F32_SLACK);
        }
        assert!(Reconnect::default().delays().nth(1000).is_some(), "endless");
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

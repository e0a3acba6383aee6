//! A connection's timers: keepalive pings, the idle timeout and the write-stall deadline, sharing
//! one timer entry.
//!
//! Activity does not touch the timer: the keepalive compares a frame counter at each tick, and the
//! idle deadline is recomputed when the timer fires. A busy connection therefore pays no timer
//! bookkeeping per message, and an idle one holds a single `Sleep`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::ws::Config;

/// What a connection's timers ask for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TimerEvent {
    SendPing,
    KeepaliveTimeout,
    Idle,
    WriteStalled,
}

/// Keepalive, idle and write-stall deadlines, sharing one timer entry per connection.
///
/// Activity does not touch the timer: the keepalive compares a frame counter at each tick, and the
/// idle deadline is recomputed when the timer fires. A busy connection therefore pays no timer
/// bookkeeping per message.
pub(crate) struct Timers {
    sleep: Pin<Box<Sleep>>,
    keepalive: Option<Keepalive>,
    idle: Option<Idle>,
    write_timeout: Duration,
    write_stall_deadline: Option<Instant>,
}

struct Keepalive {
    interval: Duration,
    next_tick: Instant,
    frames_seen: u64,
    ping_outstanding: bool,
}

struct Idle {
    timeout: Duration,
    last_activity: Instant,
}

impl Timers {
    pub(crate) fn new(config: &Config) -> Self {
        let now = Instant::now();
        let keepalive = config
            .ping_interval
            .filter(|interval| !interval.is_zero())
            .map(|interval| Keepalive {
                interval,
                next_tick: now + interval,
                frames_seen: 0,
                ping_outstanding: false,
            });
        let idle = config.idle_timeout.map(|timeout| Idle {
            timeout,
            last_activity: now,
        });
        let mut timers = Timers {
            sleep: Box::pin(tokio::time::sleep_until(now)),
            keepalive,
            idle,
            write_timeout: config.write_timeout,
            write_stall_deadline: None,
        };
        let first = timers.next_deadline(now);
        timers.sleep.as_mut().reset(first);
        timers
    }

    fn next_deadline(&self, now: Instant) -> Instant {
        // Far enough to never fire, near enough not to overflow the timer wheel.
        let mut next = now + Duration::from_secs(86_400 * 365);
        if let Some(keepalive) = &self.keepalive {
            next = next.min(keepalive.next_tick);
        }
        if let Some(idle) = &self.idle {
            next = next.min(idle.last_activity + idle.timeout);
        }
        if let Some(deadline) = self.write_stall_deadline {
            next = next.min(deadline);
        }
        next
    }

    pub(crate) fn touch_idle(&mut self) {
        if let Some(idle) = &mut self.idle {
            idle.last_activity = Instant::now();
        }
    }

    pub(crate) fn arm_write_stall(&mut self) {
        if self.write_stall_deadline.is_none() {
            let deadline = Instant::now() + self.write_timeout;
            self.write_stall_deadline = Some(deadline);
            if deadline < self.sleep.deadline() {
                self.sleep.as_mut().reset(deadline);
            }
        }
    }

    pub(crate) fn disarm_write_stall(&mut self) {
        self.write_stall_deadline = None;
    }

    /// Polls the timer. `busy` means a handler is running on a message the peer sent, which counts
    /// as activity for keepalive and idle alike.
    pub(crate) fn poll(
        &mut self,
        cx: &mut Context<'_>,
        inbound_frames: u64,
        busy: bool,
    ) -> Poll<TimerEvent> {
        loop {
            if self.sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let mut event = None;
            if self
                .write_stall_deadline
                .is_some_and(|deadline| now >= deadline)
            {
                return Poll::Ready(TimerEvent::WriteStalled);
            }
            if let Some(keepalive) = &mut self.keepalive
                && now >= keepalive.next_tick
            {
                keepalive.next_tick = now + keepalive.interval;
                if busy || inbound_frames != keepalive.frames_seen {
                    keepalive.frames_seen = inbound_frames;
                    keepalive.ping_outstanding = false;
                } else if keepalive.ping_outstanding {
                    event = Some(TimerEvent::KeepaliveTimeout);
                } else {
                    keepalive.ping_outstanding = true;
                    event = Some(TimerEvent::SendPing);
                }
            }
            if let Some(idle) = &mut self.idle {
                if busy {
                    idle.last_activity = now;
                } else if now >= idle.last_activity + idle.timeout {
                    event = event.or(Some(TimerEvent::Idle));
                }
            }
            let next = self.next_deadline(now);
            self.sleep.as_mut().reset(next);
            if let Some(event) = event {
                return Poll::Ready(event);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    fn config(ping: Option<u64>, idle: Option<u64>) -> Config {
        Config::default()
            .ping_interval(ping.map(Duration::from_secs))
            .idle_timeout(idle.map(Duration::from_secs))
    }

    async fn next_event(timers: &mut Timers, frames: u64) -> TimerEvent {
        poll_fn(|cx| timers.poll(cx, frames, false)).await
    }

    #[tokio::test(start_paused = true)]
    async fn keepalive_pings_a_quiet_peer_then_gives_up() {
        let mut timers = Timers::new(&config(Some(30), None));
        let start = Instant::now();
        assert_eq!(next_event(&mut timers, 0).await, TimerEvent::SendPing);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
        assert_eq!(
            next_event(&mut timers, 0).await,
            TimerEvent::KeepaliveTimeout
        );
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_pong_keeps_the_connection_alive() {
        let mut timers = Timers::new(&config(Some(30), None));
        assert_eq!(next_event(&mut timers, 0).await, TimerEvent::SendPing);
        // The pong arrived (frame count moved): the next tick is quiet, the one after pings again.
        let start = Instant::now();
        assert_eq!(next_event(&mut timers, 1).await, TimerEvent::SendPing);
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_deadline_moves_with_activity() {
        let mut timers = Timers::new(&config(None, Some(10)));
        let start = Instant::now();
        tokio::time::advance(Duration::from_secs(6)).await;
        timers.touch_idle();
        assert_eq!(next_event(&mut timers, 0).await, TimerEvent::Idle);
        assert_eq!(start.elapsed(), Duration::from_secs(16));
    }

    #[tokio::test(start_paused = true)]
    async fn write_stall_fires_only_while_armed() {
        let mut timers = Timers::new(&config(None, None).write_timeout(Duration::from_secs(5)));
        timers.arm_write_stall();
        timers.disarm_write_stall();
        timers.arm_write_stall();
        let start = Instant::now();
        assert_eq!(next_event(&mut timers, 0).await, TimerEvent::WriteStalled);
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}

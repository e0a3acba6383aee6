//! The server-wide memory budget for messages still arriving.
//!
//! Per-connection limits ([`Config::max_message_size`](crate::ws::Config::max_message_size)) do
//! not bound a server: 16 peers that each send most of a 48 MiB message and stall hold 700 MiB
//! between them, and the default 10,000 connections could hold more than any machine has. A
//! [`MemoryBudget`] is shared by every connection of a server (it lives in the
//! [`Config`](crate::ws::Config), and clones share it): each connection charges it for the bytes
//! it holds in partly received frames and messages, inflated output included, beyond a small
//! allowance of its own, and gives them back when the message is handed to the handler or
//! dropped.
//!
//! When a charge would pass the limit, that connection's message is refused: close 1013 (Try
//! Again Later, RFC 6455 section 7.4.1 via the IANA registry) and its bytes are freed, while every
//! other connection goes on. Messages that fit in the allowance never touch the budget, so small
//! traffic is served even while large uploads have used the budget up.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bytes a connection may hold in partial messages without charging the budget: one bulk read,
/// so ordinary messages never contend on it.
pub(crate) const ALLOWANCE: usize = 64 * 1024;

/// A limit on the bytes all connections sharing it hold in messages still arriving
/// ([`Config::memory_budget`](crate::ws::Config::memory_budget)). Cheap to clone; clones share the
/// count.
///
/// Each connection charges it for what it holds in partial frames, fragments and inflated output
/// beyond a 64 KiB allowance of its own, and gives the bytes back when the message reaches the
/// handler or the connection ends. A message that would take the total past the limit is refused:
/// its connection is closed with 1013 (Try Again Later) and its bytes are freed, while every
/// other connection goes on. Messages that fit in the allowance never touch the budget.
///
/// ```
/// use wsgrpc::ws::{Config, MemoryBudget};
///
/// let budget = MemoryBudget::new(64 << 20);
/// let config = Config::default().memory_budget(budget.clone());
/// assert_eq!(config.memory_budget.limit(), 64 << 20);
/// assert_eq!(budget.in_use(), 0);
/// ```
#[derive(Clone)]
pub struct MemoryBudget {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    in_use: AtomicUsize,
    refused: AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        MemoryBudget {
            inner: Arc::new(Inner {
                limit,
                in_use: AtomicUsize::new(0),
                refused: AtomicU64::new(0),
            }),
        }
    }

    /// The limit, in bytes.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Bytes charged right now, across every connection sharing this budget. Never above
    /// [`limit`](Self::limit).
    pub fn in_use(&self) -> usize {
        self.inner.in_use.load(Ordering::Relaxed)
    }

    /// Messages refused with 1013 so far because the budget was used up.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Charges `bytes` if they fit under the limit.
    pub(crate) fn try_charge(&self, bytes: usize) -> bool {
        let limit = self.inner.limit;
        self.inner
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |used| {
                used.checked_add(bytes).filter(|&total| total <= limit)
            })
            .is_ok()
    }

    /// Gives `bytes` back.
    pub(crate) fn release(&self, bytes: usize) {
        self.inner.in_use.fetch_sub(bytes, Ordering::AcqRel);
    }

    pub(crate) fn count_refusal(&self) {
        self.inner.refused.fetch_add(1, Ordering::Relaxed);
    }
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("limit", &self.limit())
            .field("in_use", &self.in_use())
            .finish()
    }
}

/// One connection's share: what it has charged, given back when it is dropped.
pub(crate) struct Charge {
    budget: MemoryBudget,
    charged: usize,
}

impl Charge {
    pub(crate) fn new(budget: MemoryBudget) -> Self {
        Charge { budget, charged: 0 }
    }

    /// Adjusts the charge to `held` bytes (minus the allowance). `false` when growing would pass
    /// the limit; the charge is then unchanged.
    pub(crate) fn hold(&mut self, held: usize) -> bool {
        let wanted = held.saturating_sub(ALLOWANCE);
        if wanted > self.charged {
            if !self.budget.try_charge(wanted - self.charged) {
                self.budget.count_refusal();
                return false;
            }
        } else if wanted < self.charged {
            self.budget.release(self.charged - wanted);
        }
        self.charged = wanted;
        true
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.charged > 0 {
            self.budget.release(self.charged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_stay_under_the_limit_and_come_back() {
        let budget = MemoryBudget::new(1 << 20);
        let mut a = Charge::new(budget.clone());
        let mut b = Charge::new(budget.clone());
        assert!(a.hold(ALLOWANCE), "the allowance is free");
        assert_eq!(budget.in_use(), 0);
        assert!(a.hold(ALLOWANCE + 700 * 1024));
        assert!(!b.hold(ALLOWANCE + 400 * 1024), "would pass 1 MiB");
        assert_eq!(budget.refused(), 1);
        assert!(b.hold(ALLOWANCE + 300 * 1024));
        assert_eq!(budget.in_use(), 1000 * 1024);
        assert!(a.hold(0));
        assert_eq!(budget.in_use(), 300 * 1024);
        drop(b);
        assert_eq!(budget.in_use(), 0);
    }
}

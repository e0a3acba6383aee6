//! Members on the other nodes, as their presence reports told: room counts per node, each node
//! forgotten once it has been silent for [`MISSED_HEARTBEATS`] of its own heartbeats.
//!
//! Every node reports its whole presence each heartbeat and one room's count whenever it changes,
//! so a join on one node shows in `presence` on the others about one broker round trip later, and
//! a node that crashed (or lost the broker) stops counting after at most
//! `MISSED_HEARTBEATS x heartbeat` (plus the broker's latency). A node that shuts its hub down
//! says so and is forgotten at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Heartbeats a node may miss before its members stop counting.
pub(super) const MISSED_HEARTBEATS: u32 = 3;

struct Node {
    last_heard: Instant,
    /// How long this node's members count after its last report.
    lifetime: Duration,
    rooms: HashMap<String, u32>,
}

/// Room counts of the other nodes.
#[derive(Default)]
pub(super) struct Remote {
    nodes: HashMap<u64, Node>,
}

fn lifetime(heartbeat_ms: u32) -> Duration {
    Duration::from_millis(u64::from(heartbeat_ms.max(1))) * MISSED_HEARTBEATS
}

impl Remote {
    fn node(&mut self, origin: u64, heartbeat_ms: u32, now: Instant) -> &mut Node {
        let node = self.nodes.entry(origin).or_insert_with(|| Node {
            last_heard: now,
            lifetime: lifetime(heartbeat_ms),
            rooms: HashMap::new(),
        });
        node.last_heard = now;
        node.lifetime = lifetime(heartbeat_ms);
        node
    }

    /// A node's whole presence replaces what was known of it.
    pub(super) fn report(
        &mut self,
        origin: u64,
        heartbeat_ms: u32,
        rooms: Vec<(String, u32)>,
        now: Instant,
    ) {
        let node = self.node(origin, heartbeat_ms, now);
        node.rooms = rooms.into_iter().filter(|(_, count)| *count > 0).collect();
    }

    /// One room's count on a node.
    pub(super) fn room_count(
        &mut self,
        origin: u64,
        heartbeat_ms: u32,
        room: String,
        members: u32,
        now: Instant,
    ) {
        let node = self.node(origin, heartbeat_ms, now);
        if members == 0 {
            node.rooms.remove(&room);
        } else {
            node.rooms.insert(room, members);
        }
    }

    /// A node left.
    pub(super) fn forget(&mut self, origin: u64) {
        self.nodes.remove(&origin);
    }

    /// Members of `room` on the nodes heard from recently enough.
    pub(super) fn count(&self, room: &str, now: Instant) -> usize {
        self.live(now)
            .filter_map(|node| node.rooms.get(room))
            .map(|count| *count as usize)
            .sum()
    }

    /// Rooms with members on the nodes heard from recently enough.
    pub(super) fn rooms(&self, now: Instant) -> impl Iterator<Item = &str> {
        self.live(now)
            .flat_map(|node| node.rooms.keys().map(String::as_str))
    }

    /// Nodes heard from recently enough.
    pub(super) fn nodes(&self, now: Instant) -> usize {
        self.live(now).count()
    }

    /// Drops the nodes that fell silent, so a deployment that keeps replacing nodes does not
    /// keep their reports forever.
    pub(super) fn expire(&mut self, now: Instant) {
        self.nodes.retain(|_, node| is_live(node, now));
    }

    fn live(&self, now: Instant) -> impl Iterator<Item = &Node> {
        self.nodes.values().filter(move |node| is_live(node, now))
    }
}

fn is_live(node: &Node, now: Instant) -> bool {
    now.saturating_duration_since(node.last_heard) <= node.lifetime
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_live_nodes_and_forgets_silent_ones() {
        let start = Instant::now();
        let mut remote = Remote::default();
        remote.report(1, 1000, vec![("a".into(), 2), ("b".into(), 1)], start);
        remote.room_count(2, 100, "a".into(), 5, start);
        assert_eq!(remote.count("a", start), 7);
        assert_eq!(remote.count("b", start), 1);
        assert_eq!(remote.nodes(start), 2);
        // Node 2 reports every 100 ms: after 3 missed heartbeats it no longer counts.
        let later = start + Duration::from_millis(301);
        assert_eq!(remote.count("a", later), 2);
        remote.room_count(1, 1000, "a".into(), 0, later);
        assert_eq!(remote.count("a", later), 0);
        let mut rooms: Vec<_> = remote.rooms(later).collect();
        rooms.sort();
        assert_eq!(rooms, ["b"]);
        remote.expire(later);
        assert_eq!(remote.nodes.len(), 1);
        remote.forget(1);
        assert_eq!(remote.nodes(later), 0);
    }

    #[test]
    fn a_full_report_replaces_the_old_one() {
        let now = Instant::now();
        let mut remote = Remote::default();
        remote.report(1, 1000, vec![("a".into(), 2)], now);
        remote.report(1, 1000, vec![("b".into(), 4)], now);
        assert_eq!((remote.count("a", now), remote.count("b", now)), (0, 4));
    }
}

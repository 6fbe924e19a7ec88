//! Node liveness from node-level heartbeats, and who leads which group.
//!
//! Partition groups run without per-group heartbeats or election timers
//! (thousands of them would cost a core). Instead every node sends each peer
//! one heartbeat per interval naming the groups it leads. A follower whose
//! group has no live leader claiming it starts an election (see the server's
//! election driver).

use cairn_clock::Instant;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::types::GroupId;
use crate::types::NodeId;

/// What a leader says about a group it leads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedInfo {
    pub term: u64,
    pub high_watermark: u64,
    pub log_start: u64,
    pub healthy: Vec<NodeId>,
    pub voters: Vec<NodeId>,
    /// The leader's replica change in progress (empty: none).
    pub reassignment: String,
}

#[derive(Debug, Clone)]
struct PeerView {
    last_heard: Instant,
    led: HashMap<GroupId, LedInfo>,
}

/// What this node knows about its peers' liveness and leaderships.
pub struct Liveness {
    me: NodeId,
    dead_after: Duration,
    peers: Mutex<HashMap<NodeId, PeerView>>,
}

impl Liveness {
    pub fn new(me: NodeId, dead_after: Duration) -> Self {
        Self {
            me,
            dead_after,
            peers: Mutex::new(HashMap::new()),
        }
    }

    pub fn dead_after(&self) -> Duration {
        self.dead_after
    }

    /// Records a heartbeat (sent or answered) from `node`.
    pub fn heard_from(&self, node: NodeId, led: impl IntoIterator<Item = (GroupId, LedInfo)>) {
        if node == self.me {
            return;
        }
        if let Ok(mut peers) = self.peers.lock() {
            peers.insert(
                node,
                PeerView {
                    last_heard: cairn_clock::now(),
                    led: led.into_iter().collect(),
                },
            );
        }
    }

    /// Records that `node` answered, keeping what it last said it leads.
    pub fn touch(&self, node: NodeId) {
        if node == self.me {
            return;
        }
        if let Ok(mut peers) = self.peers.lock() {
            peers
                .entry(node)
                .and_modify(|v| v.last_heard = cairn_clock::now())
                .or_insert_with(|| PeerView {
                    last_heard: cairn_clock::now(),
                    led: HashMap::new(),
                });
        }
    }

    pub fn is_alive(&self, node: NodeId) -> bool {
        if node == self.me {
            return true;
        }
        self.peers
            .lock()
            .ok()
            .and_then(|p| {
                p.get(&node)
                    .map(|v| v.last_heard.elapsed() < self.dead_after)
            })
            .unwrap_or(false)
    }

    /// A live peer that claims to lead `group` at a term >= `min_term`.
    pub fn live_leader(&self, group: GroupId, min_term: u64) -> Option<(NodeId, LedInfo)> {
        let peers = self.peers.lock().ok()?;
        peers
            .iter()
            .filter(|(_, v)| v.last_heard.elapsed() < self.dead_after)
            .filter_map(|(id, v)| v.led.get(&group).map(|info| (*id, info)))
            .filter(|(_, info)| info.term >= min_term)
            .max_by_key(|(_, info)| info.term)
            .map(|(id, info)| (id, info.clone()))
    }

    /// Milliseconds since each known peer was last heard from.
    pub fn last_heard_ms(&self) -> HashMap<NodeId, u64> {
        self.peers
            .lock()
            .map(|p| {
                p.iter()
                    .map(|(id, v)| (*id, v.last_heard.elapsed().as_millis() as u64))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_die_after_silence_and_their_claims_with_them() {
        let l = Liveness::new(1, Duration::from_millis(30));
        assert!(l.is_alive(1));
        assert!(!l.is_alive(2));
        let info = LedInfo {
            term: 3,
            ..LedInfo::default()
        };
        l.heard_from(2, [(7, info.clone())]);
        assert!(l.is_alive(2));
        assert_eq!(l.live_leader(7, 3), Some((2, info)));
        assert_eq!(l.live_leader(7, 4), None, "stale term must not count");
        std::thread::sleep(Duration::from_millis(40));
        assert!(!l.is_alive(2));
        assert_eq!(l.live_leader(7, 0), None);
    }
}

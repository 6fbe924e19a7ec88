//! The client's view of cluster metadata: which node leads each partition,
//! and where each node listens.
//!
//! Pure data; [`crate::Client`] fills it from `Metadata` responses and from
//! the leader hints carried by `NOT_LEADER` failures. Every change bumps a
//! generation counter, so that concurrent callers that failed against the
//! same stale entry refresh it only once.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use cairn_proto::v1::{MetadataResponse, TopicMetadata};

use crate::addr::normalize_addr;
use crate::error::LeaderHint;

/// Routing information for one topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TopicRoute {
    /// Partition number → current leader, if any.
    pub leaders: BTreeMap<u32, Option<u64>>,
}

impl TopicRoute {
    fn from_metadata(t: &TopicMetadata) -> Self {
        TopicRoute {
            leaders: t
                .partitions
                .iter()
                .map(|p| (p.partition, p.leader))
                .collect(),
        }
    }
}

/// Where a request for a partition should go, according to the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Send to this node.
    Leader { node: u64, addr: String },
    /// The partition exists but has no leader (or its leader's address is
    /// unknown).
    NoLeader,
    /// The topic is not in the cache.
    UnknownTopic,
    /// The topic is cached but has no such partition.
    UnknownPartition { partitions: usize },
}

/// Cached cluster metadata.
#[derive(Debug, Default)]
pub(crate) struct MetadataCache {
    generation: u64,
    metadata_leader: Option<u64>,
    /// Node id → canonical gRPC address.
    nodes: BTreeMap<u64, String>,
    topics: HashMap<String, TopicRoute>,
    /// When each cached topic was last answered by a `Metadata` request.
    fetched: HashMap<String, Instant>,
}

impl MetadataCache {
    /// Changes with every update.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Merges a `Metadata` response that was asked for `requested` topics
    /// (all topics when empty): node list and metadata leader are replaced,
    /// returned topics are replaced, and requested topics missing from the
    /// answer are forgotten.
    pub(crate) fn apply(&mut self, resp: &MetadataResponse, requested: &[String]) {
        self.generation += 1;
        self.metadata_leader = resp.metadata_leader;
        if !resp.nodes.is_empty() {
            self.nodes = resp
                .nodes
                .iter()
                .filter_map(|n| normalize_addr(&n.grpc_addr).ok().map(|a| (n.id, a)))
                .collect();
        }
        if requested.is_empty() {
            self.topics.clear();
            self.fetched.clear();
        } else {
            for t in requested {
                self.topics.remove(t);
                self.fetched.remove(t);
            }
        }
        let now = Instant::now();
        for t in &resp.topics {
            self.topics
                .insert(t.name.clone(), TopicRoute::from_metadata(t));
            self.fetched.insert(t.name.clone(), now);
        }
    }

    /// Records the leader named by a `NOT_LEADER` failure.
    pub(crate) fn apply_hint(&mut self, topic: &str, partition: u32, hint: &LeaderHint) {
        self.generation += 1;
        if let (Some(id), Some(addr)) = (hint.id, &hint.addr) {
            self.nodes.insert(id, addr.clone());
        }
        if let Some(id) = hint.id {
            if let Some(leader) = self
                .topics
                .get_mut(topic)
                .and_then(|t| t.leaders.get_mut(&partition))
            {
                *leader = Some(id);
            }
        }
    }

    /// Marks a topic as unknown (after it was deleted).
    pub(crate) fn forget_topic(&mut self, topic: &str) {
        self.generation += 1;
        self.topics.remove(topic);
        self.fetched.remove(topic);
    }

    /// Where to send a request for `topic`/`partition`.
    pub(crate) fn route(&self, topic: &str, partition: u32) -> Route {
        let Some(t) = self.topics.get(topic) else {
            return Route::UnknownTopic;
        };
        match t.leaders.get(&partition) {
            None => Route::UnknownPartition {
                partitions: t.leaders.len(),
            },
            Some(None) => Route::NoLeader,
            Some(Some(node)) => match self.nodes.get(node) {
                Some(addr) => Route::Leader {
                    node: *node,
                    addr: addr.clone(),
                },
                None => Route::NoLeader,
            },
        }
    }

    /// Number of partitions of a cached topic, if its metadata is younger
    /// than `max_age`.
    pub(crate) fn fresh_partition_count(&self, topic: &str, max_age: Duration) -> Option<u32> {
        let fresh = self
            .fetched
            .get(topic)
            .is_some_and(|at| at.elapsed() < max_age);
        if fresh {
            self.partition_count(topic)
        } else {
            None
        }
    }

    /// Number of partitions of a cached topic.
    pub(crate) fn partition_count(&self, topic: &str) -> Option<u32> {
        self.topics
            .get(topic)
            .map(|t| u32::try_from(t.leaders.len()).unwrap_or(u32::MAX))
    }

    /// Known node addresses, metadata leader first, then by node id.
    pub(crate) fn node_addrs(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.nodes.len());
        if let Some(addr) = self.metadata_leader.and_then(|id| self.nodes.get(&id)) {
            out.push(addr.clone());
        }
        for addr in self.nodes.values() {
            if !out.contains(addr) {
                out.push(addr.clone());
            }
        }
        out
    }

    /// The address of a node, if known.
    pub(crate) fn node_addr(&self, id: u64) -> Option<&str> {
        self.nodes.get(&id).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::v1::{Node, PartitionMetadata};

    fn node(id: u64, addr: &str) -> Node {
        Node {
            id,
            grpc_addr: addr.into(),
            ..Default::default()
        }
    }

    fn topic(name: &str, leaders: &[Option<u64>]) -> TopicMetadata {
        TopicMetadata {
            name: name.into(),
            partitions: leaders
                .iter()
                .enumerate()
                .map(|(i, l)| PartitionMetadata {
                    partition: i as u32,
                    leader: *l,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn response(topics: Vec<TopicMetadata>) -> MetadataResponse {
        MetadataResponse {
            metadata_leader: Some(2),
            nodes: vec![node(1, "h1:1"), node(2, "http://h2:2"), node(3, "h3:3")],
            topics,
            ..Default::default()
        }
    }

    #[test]
    fn routes_to_leader() {
        let mut c = MetadataCache::default();
        c.apply(&response(vec![topic("t", &[Some(1), None, Some(9)])]), &[]);
        assert_eq!(
            c.route("t", 0),
            Route::Leader {
                node: 1,
                addr: "h1:1".into()
            }
        );
        assert_eq!(c.route("t", 1), Route::NoLeader);
        assert_eq!(c.route("t", 2), Route::NoLeader, "leader 9 has no address");
        assert_eq!(c.route("t", 3), Route::UnknownPartition { partitions: 3 });
        assert_eq!(c.route("u", 0), Route::UnknownTopic);
        assert_eq!(c.partition_count("t"), Some(3));
        assert_eq!(c.node_addrs(), vec!["h2:2", "h1:1", "h3:3"]);
    }

    #[test]
    fn partial_refresh_replaces_only_requested_topics() {
        let mut c = MetadataCache::default();
        c.apply(
            &response(vec![topic("a", &[Some(1)]), topic("b", &[Some(1)])]),
            &[],
        );
        let g = c.generation();
        // Asked for a and c: a moves, c does not exist, b is untouched.
        c.apply(
            &response(vec![topic("a", &[Some(3)])]),
            &["a".into(), "c".into()],
        );
        assert!(c.generation() > g);
        assert!(matches!(c.route("a", 0), Route::Leader { node: 3, .. }));
        assert!(matches!(c.route("b", 0), Route::Leader { node: 1, .. }));
        assert_eq!(c.route("c", 0), Route::UnknownTopic);
        // A full refresh drops topics that are gone.
        c.apply(&response(vec![topic("a", &[Some(3)])]), &[]);
        assert_eq!(c.route("b", 0), Route::UnknownTopic);
        c.forget_topic("a");
        assert_eq!(c.route("a", 0), Route::UnknownTopic);
    }

    #[test]
    fn hint_moves_leader_and_learns_address() {
        let mut c = MetadataCache::default();
        c.apply(&response(vec![topic("t", &[Some(1)])]), &[]);
        c.apply_hint(
            "t",
            0,
            &LeaderHint {
                id: Some(4),
                addr: Some("h4:4".into()),
            },
        );
        assert_eq!(
            c.route("t", 0),
            Route::Leader {
                node: 4,
                addr: "h4:4".into()
            }
        );
        assert_eq!(c.node_addr(4), Some("h4:4"));
        // A hint for an unknown partition changes nothing but the node map.
        c.apply_hint(
            "t",
            7,
            &LeaderHint {
                id: Some(2),
                addr: None,
            },
        );
        assert_eq!(c.route("t", 7), Route::UnknownPartition { partitions: 1 });
    }

    #[test]
    fn partition_counts_expire_after_the_max_age() {
        let mut c = MetadataCache::default();
        c.apply(&response(vec![topic("t", &[Some(1), Some(2)])]), &[]);
        assert_eq!(
            c.fresh_partition_count("t", Duration::from_secs(60)),
            Some(2)
        );
        assert_eq!(c.fresh_partition_count("t", Duration::ZERO), None);
        // Still there for a caller that cannot refresh.
        assert_eq!(c.partition_count("t"), Some(2));
        c.forget_topic("t");
        assert_eq!(c.fresh_partition_count("t", Duration::from_secs(60)), None);
    }
}

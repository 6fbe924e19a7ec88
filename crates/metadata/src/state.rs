use std::collections::BTreeMap;

use serde::Deserialize;
use serde::Serialize;

use crate::command::MetaCommand;
use crate::command::MetaError;
use crate::command::MetaResponse;
use crate::groups::check_commit;
use crate::groups::GroupCommit;
use crate::groups::GroupError;
use crate::groups::GroupMeta;

/// A node's id: unique in a cluster, chosen by the operator, never 0.
pub type NodeId = u64;

/// A Raft group's id. Group 0 is the metadata group; partitions get 1, 2, ...
pub type GroupId = u64;

/// The Raft group that replicates this state.
pub const METADATA_GROUP: GroupId = 0;

/// A node of the cluster and the addresses it advertises.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: NodeId,
    /// Internal RPC (Raft, heartbeats).
    pub rpc_addr: String,
    /// Client gRPC API.
    pub grpc_addr: String,
    pub admin_addr: String,
    pub kafka_addr: String,
    pub rack: Option<String>,
}

/// Where one partition lives: its Raft group and its replicas. The first
/// replica is the preferred leader, and the one that bootstraps the group.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PartitionAssignment {
    pub partition: u32,
    pub group: GroupId,
    pub replicas: Vec<NodeId>,
    /// The replicas the group was created with: only these may bootstrap
    /// (initialize) the Raft group; replicas added later join it.
    #[serde(default)]
    pub bootstrap: Vec<NodeId>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Topic {
    pub id: u64,
    pub name: String,
    pub replication_factor: u32,
    pub partitions: Vec<PartitionAssignment>,
    pub configs: BTreeMap<String, String>,
}

/// An access-control entry. Stored only, until the security issue enforces it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclEntry {
    pub principal: String,
    pub host: String,
    pub resource_type: String,
    pub resource_name: String,
    pub pattern_type: String,
    pub operation: String,
    pub permission: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub metadata: String,
    pub commit_time_ms: i64,
}

/// Everything the metadata group replicates.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataState {
    pub cluster_id: Option<String>,
    pub nodes: BTreeMap<NodeId, NodeInfo>,
    pub topics: BTreeMap<String, Topic>,
    pub next_topic_id: u64,
    pub next_group_id: GroupId,
    pub acls: Vec<AclEntry>,
    /// group -> topic -> partition -> committed offset.
    pub group_offsets: BTreeMap<String, BTreeMap<String, BTreeMap<u32, CommittedOffset>>>,
    /// Consumer groups' stored membership (see [`crate::GroupMeta`]).
    #[serde(default)]
    pub groups: BTreeMap<String, GroupMeta>,
    /// The next producer id `AllocateProducerIds` hands out.
    #[serde(default)]
    pub next_producer_id: i64,
}

impl MetadataState {
    /// Applies one command. Deterministic: depends only on `self` and `cmd`.
    pub fn apply(&mut self, cmd: MetaCommand) -> MetaResponse {
        match cmd {
            MetaCommand::InitCluster { cluster_id } => match &self.cluster_id {
                None => {
                    self.cluster_id = Some(cluster_id);
                    MetaResponse::Ok
                }
                Some(existing) if *existing == cluster_id => MetaResponse::Ok,
                Some(existing) => MetaResponse::Error(MetaError::ClusterIdMismatch {
                    existing: existing.clone(),
                    proposed: cluster_id,
                }),
            },
            MetaCommand::RegisterNode(node) => {
                self.nodes.insert(node.id, node);
                MetaResponse::Ok
            }
            MetaCommand::CreateTopic {
                name,
                replication_factor,
                configs,
                assignment,
            } => self.create_topic(name, replication_factor, configs, assignment),
            MetaCommand::DeleteTopic { name } => match self.topics.remove(&name) {
                Some(_) => MetaResponse::Ok,
                None => MetaResponse::Error(MetaError::UnknownTopic(name)),
            },
            MetaCommand::ReassignPartition {
                topic,
                partition,
                replicas,
            } => self.reassign(topic, partition, replicas),
            MetaCommand::PutAcl(acl) => {
                if !self.acls.contains(&acl) {
                    self.acls.push(acl);
                    self.acls.sort();
                }
                MetaResponse::Ok
            }
            MetaCommand::DeleteAcl(acl) => {
                self.acls.retain(|a| *a != acl);
                MetaResponse::Ok
            }
            MetaCommand::AlterTopicConfig { name, set, delete } => {
                let Some(topic) = self.topics.get_mut(&name) else {
                    return MetaResponse::Error(MetaError::UnknownTopic(name));
                };
                match crate::config::alter_topic_configs(&topic.configs, &set, &delete) {
                    Ok(next) => {
                        topic.configs = next.clone();
                        MetaResponse::TopicConfigs(next)
                    }
                    Err(e) => MetaResponse::Error(MetaError::InvalidArgument(e.to_string())),
                }
            }
            MetaCommand::CommitOffsets { group, offsets } => {
                self.store_offsets(group, offsets);
                MetaResponse::Ok
            }
            MetaCommand::PutGroup { group, meta } => {
                self.groups.insert(group, meta);
                MetaResponse::Ok
            }
            MetaCommand::DeleteGroup { group } => {
                let members = self.groups.get(&group).map_or(0, |g| g.members.len());
                if members > 0 {
                    return MetaResponse::GroupError(GroupError::NotEmpty { group, members });
                }
                let known = self.groups.remove(&group).is_some();
                let had_offsets = self.group_offsets.remove(&group).is_some();
                if known || had_offsets {
                    MetaResponse::Ok
                } else {
                    MetaResponse::GroupError(GroupError::UnknownGroup(group))
                }
            }
            MetaCommand::CommitBatch(commits) => {
                let results = commits
                    .into_iter()
                    .map(|c| self.commit(c))
                    .collect::<Vec<_>>();
                MetaResponse::Commits(results)
            }
            MetaCommand::DeleteOffsets { group, partitions } => {
                let known = self.groups.contains_key(&group);
                let Some(by_topic) = self.group_offsets.get_mut(&group) else {
                    return if known {
                        MetaResponse::Ok
                    } else {
                        MetaResponse::GroupError(GroupError::UnknownGroup(group))
                    };
                };
                for (topic, partition) in partitions {
                    if let Some(parts) = by_topic.get_mut(&topic) {
                        parts.remove(&partition);
                        if parts.is_empty() {
                            by_topic.remove(&topic);
                        }
                    }
                }
                if by_topic.is_empty() {
                    self.group_offsets.remove(&group);
                }
                MetaResponse::Ok
            }
            MetaCommand::AllocateProducerIds { count } => {
                let first = self.next_producer_id;
                self.next_producer_id = first.saturating_add(i64::from(count));
                MetaResponse::ProducerIds { first }
            }
            MetaCommand::CreatePartitions {
                name,
                count,
                assignment,
            } => self.create_partitions(name, count, assignment),
        }
    }

    fn commit(&mut self, c: GroupCommit) -> Result<(), GroupError> {
        check_commit(self.groups.get(&c.group), &c)?;
        self.store_offsets(c.group, c.offsets);
        Ok(())
    }

    fn store_offsets(&mut self, group: String, offsets: Vec<(String, u32, CommittedOffset)>) {
        let by_topic = self.group_offsets.entry(group).or_default();
        for (topic, partition, committed) in offsets {
            by_topic
                .entry(topic)
                .or_default()
                .insert(partition, committed);
        }
    }

    /// Every group known: with stored membership or committed offsets.
    pub fn group_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .groups
            .keys()
            .chain(self.group_offsets.keys())
            .cloned()
            .collect();
        names.sort();
        names.dedup();
        names
    }

    fn create_topic(
        &mut self,
        name: String,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
        assignment: Vec<Vec<NodeId>>,
    ) -> MetaResponse {
        if self.topics.contains_key(&name) {
            return MetaResponse::Error(MetaError::TopicExists(name));
        }
        if assignment.is_empty() {
            return MetaResponse::Error(MetaError::InvalidArgument(
                "a topic needs at least one partition".to_string(),
            ));
        }
        if let Some(bad) = assignment
            .iter()
            .flatten()
            .find(|n| !self.nodes.contains_key(n))
        {
            return MetaResponse::Error(MetaError::InvalidArgument(format!(
                "assignment names node {bad}, which is not in the cluster"
            )));
        }
        self.next_topic_id += 1;
        let mut partitions = Vec::with_capacity(assignment.len());
        for (i, replicas) in assignment.into_iter().enumerate() {
            self.next_group_id += 1;
            partitions.push(PartitionAssignment {
                partition: i as u32,
                group: self.next_group_id,
                bootstrap: replicas.clone(),
                replicas,
            });
        }
        let topic = Topic {
            id: self.next_topic_id,
            name: name.clone(),
            replication_factor,
            partitions,
            configs,
        };
        self.topics.insert(name, topic.clone());
        MetaResponse::TopicCreated(topic)
    }

    /// How many partitions growing topic `name` to `count` adds: refused
    /// unless the topic exists and the count grows (partitions are never
    /// removed). The one check behind every way of adding partitions.
    pub fn partitions_to_add(&self, name: &str, count: u32) -> Result<u32, MetaError> {
        let topic = self
            .topics
            .get(name)
            .ok_or_else(|| MetaError::UnknownTopic(name.to_string()))?;
        let existing = topic.partitions.len() as u32;
        if count <= existing {
            return Err(MetaError::InvalidPartitions(format!(
                "topic {name:?} has {existing} partitions; the count can only grow, {count} does not"
            )));
        }
        Ok(count - existing)
    }

    /// Adds partitions `count - assignment.len()` .. `count` to a topic,
    /// each with a new Raft group (ids are never reused).
    fn create_partitions(
        &mut self,
        name: String,
        count: u32,
        assignment: Vec<Vec<NodeId>>,
    ) -> MetaResponse {
        let added = match self.partitions_to_add(&name, count) {
            Ok(n) => n as usize,
            Err(e) => return MetaResponse::Error(e),
        };
        let nodes = &self.nodes;
        let Some(topic) = self.topics.get_mut(&name) else {
            return MetaResponse::Error(MetaError::UnknownTopic(name));
        };
        let existing = topic.partitions.len();
        if added != assignment.len() {
            return MetaResponse::Error(MetaError::InvalidPartitions(format!(
                "topic {name:?} has {existing} partitions: {} new ones make {}, not {count}",
                assignment.len(),
                existing + assignment.len()
            )));
        }
        for replicas in &assignment {
            let mut distinct = replicas.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if replicas.is_empty() || distinct.len() != replicas.len() {
                return MetaResponse::Error(MetaError::InvalidArgument(format!(
                    "replicas {replicas:?}: a partition needs distinct replicas, at least one"
                )));
            }
            if let Some(bad) = replicas.iter().find(|n| !nodes.contains_key(n)) {
                return MetaResponse::Error(MetaError::InvalidArgument(format!(
                    "assignment names node {bad}, which is not in the cluster"
                )));
            }
        }
        for (i, replicas) in assignment.into_iter().enumerate() {
            self.next_group_id += 1;
            topic.partitions.push(PartitionAssignment {
                partition: (existing + i) as u32,
                group: self.next_group_id,
                bootstrap: replicas.clone(),
                replicas,
            });
        }
        MetaResponse::TopicCreated(topic.clone())
    }

    fn reassign(&mut self, topic: String, partition: u32, replicas: Vec<NodeId>) -> MetaResponse {
        let invalid = |m: String| MetaResponse::Error(MetaError::InvalidArgument(m));
        if replicas.is_empty() {
            return invalid("a partition needs at least one replica".into());
        }
        let mut seen = replicas.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != replicas.len() {
            return invalid(format!("replicas {replicas:?} name a node twice"));
        }
        if let Some(bad) = replicas.iter().find(|n| !self.nodes.contains_key(n)) {
            return invalid(format!("node {bad} is not in the cluster"));
        }
        let Some(t) = self.topics.get_mut(&topic) else {
            return MetaResponse::Error(MetaError::UnknownTopic(topic));
        };
        let count = t.partitions.len();
        let Some(p) = t.partitions.get_mut(partition as usize) else {
            return invalid(format!(
                "topic {topic:?} has {count} partitions; partition {partition} does not exist"
            ));
        };
        p.replicas = replicas;
        MetaResponse::Ok
    }

    /// The partition whose Raft group is `group`, with its topic.
    pub fn partition_by_group(&self, group: GroupId) -> Option<(&Topic, &PartitionAssignment)> {
        self.topics.values().find_map(|t| {
            t.partitions
                .iter()
                .find(|p| p.group == group)
                .map(|p| (t, p))
        })
    }

    /// Replica count per node, over every partition.
    pub fn replica_load(&self) -> BTreeMap<NodeId, usize> {
        let mut load: BTreeMap<NodeId, usize> = self.nodes.keys().map(|id| (*id, 0)).collect();
        for p in self.topics.values().flat_map(|t| &t.partitions) {
            for r in &p.replicas {
                *load.entry(*r).or_default() += 1;
            }
        }
        load
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: NodeId) -> NodeInfo {
        NodeInfo {
            id,
            rpc_addr: format!("127.0.0.1:{}", 50052 + id),
            grpc_addr: String::new(),
            admin_addr: String::new(),
            kafka_addr: String::new(),
            rack: None,
        }
    }

    #[test]
    fn create_then_duplicate_topic_is_rejected() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        let create = MetaCommand::CreateTopic {
            name: "t".into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![1], vec![1]],
        };
        let MetaResponse::TopicCreated(t) = s.apply(create.clone()) else {
            panic!("topic not created")
        };
        assert_eq!(t.partitions.len(), 2);
        assert_ne!(t.partitions[0].group, t.partitions[1].group);
        assert_eq!(
            s.apply(create),
            MetaResponse::Error(MetaError::TopicExists("t".into()))
        );
    }

    #[test]
    fn alter_topic_config_merges_validates_and_changes_nothing_on_error() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        s.apply(MetaCommand::CreateTopic {
            name: "t".into(),
            replication_factor: 1,
            configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
            assignment: vec![vec![1]],
        });
        let alter = |set: &[(&str, &str)], delete: &[&str]| MetaCommand::AlterTopicConfig {
            name: "t".into(),
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            delete: delete.iter().map(|k| k.to_string()).collect(),
        };
        let expected = BTreeMap::from([("max.message.bytes".to_string(), "2048".to_string())]);
        assert_eq!(
            s.apply(alter(&[("max.message.bytes", "2048")], &["retention.ms"])),
            MetaResponse::TopicConfigs(expected.clone())
        );
        for bad in [
            alter(&[("no.such.key", "1")], &[]),
            alter(&[("retention.ms", "soon")], &[]),
            alter(&[], &["no.such.key"]),
        ] {
            assert!(matches!(
                s.apply(bad),
                MetaResponse::Error(MetaError::InvalidArgument(_))
            ));
        }
        assert_eq!(
            s.topics["t"].configs, expected,
            "a refused alter changes nothing"
        );
        assert_eq!(
            s.apply(MetaCommand::AlterTopicConfig {
                name: "missing".into(),
                set: BTreeMap::new(),
                delete: vec![],
            }),
            MetaResponse::Error(MetaError::UnknownTopic("missing".into()))
        );
    }

    #[test]
    fn commit_batches_are_fenced_one_by_one_and_groups_delete_when_empty() {
        use crate::groups::GroupMember;
        use crate::groups::GroupPhase;
        let mut s = MetadataState::default();
        let member = GroupMember {
            member_id: "m1".into(),
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocols: vec![("range".into(), vec![])],
            assignment: vec![],
        };
        s.apply(MetaCommand::PutGroup {
            group: "g".into(),
            meta: GroupMeta {
                generation: 2,
                phase: GroupPhase::Stable,
                members: [("m1".to_string(), member)].into(),
                ..GroupMeta::default()
            },
        });
        let c = |generation: Option<i32>, member: &str, offset: i64| GroupCommit {
            group: "g".into(),
            generation,
            member_id: member.into(),
            offsets: vec![(
                "t".into(),
                0,
                CommittedOffset {
                    offset,
                    metadata: String::new(),
                    commit_time_ms: 0,
                },
            )],
        };
        let MetaResponse::Commits(results) = s.apply(MetaCommand::CommitBatch(vec![
            c(Some(2), "m1", 10),
            c(Some(1), "m1", 99),
            c(None, "", 98),
        ])) else {
            panic!("commit batch answers commits")
        };
        assert_eq!(results[0], Ok(()));
        assert!(matches!(
            results[1],
            Err(GroupError::IllegalGeneration { .. })
        ));
        assert!(matches!(results[2], Err(GroupError::NotEmpty { .. })));
        assert_eq!(s.group_offsets["g"]["t"][&0].offset, 10);
        assert!(matches!(
            s.apply(MetaCommand::DeleteGroup { group: "g".into() }),
            MetaResponse::GroupError(GroupError::NotEmpty { .. })
        ));
        s.apply(MetaCommand::PutGroup {
            group: "g".into(),
            meta: GroupMeta {
                generation: 3,
                ..GroupMeta::default()
            },
        });
        assert_eq!(
            s.apply(MetaCommand::DeleteGroup { group: "g".into() }),
            MetaResponse::Ok
        );
        assert!(!s.group_offsets.contains_key("g") && !s.groups.contains_key("g"));
        assert!(matches!(
            s.apply(MetaCommand::DeleteGroup { group: "g".into() }),
            MetaResponse::GroupError(GroupError::UnknownGroup(_))
        ));
    }

    #[test]
    fn delete_offsets_removes_only_the_named_partitions() {
        let mut s = MetadataState::default();
        let at = |offset| CommittedOffset {
            offset,
            metadata: String::new(),
            commit_time_ms: 0,
        };
        s.apply(MetaCommand::CommitOffsets {
            group: "g".into(),
            offsets: vec![
                ("t".into(), 0, at(5)),
                ("t".into(), 1, at(6)),
                ("u".into(), 0, at(7)),
            ],
        });
        let delete = |partitions: Vec<(&str, u32)>| MetaCommand::DeleteOffsets {
            group: "g".into(),
            partitions: partitions
                .into_iter()
                .map(|(t, p)| (t.to_string(), p))
                .collect(),
        };
        assert_eq!(s.apply(delete(vec![("t", 0), ("v", 9)])), MetaResponse::Ok);
        assert!(!s.group_offsets["g"]["t"].contains_key(&0));
        assert_eq!(s.group_offsets["g"]["t"][&1].offset, 6);
        assert_eq!(s.apply(delete(vec![("t", 1), ("u", 0)])), MetaResponse::Ok);
        assert!(!s.group_offsets.contains_key("g"));
        assert!(matches!(
            s.apply(delete(vec![("t", 1)])),
            MetaResponse::GroupError(GroupError::UnknownGroup(_))
        ));
    }

    #[test]
    fn group_ids_are_never_reused_after_delete() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        let create = |n: &str| MetaCommand::CreateTopic {
            name: n.into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![1]],
        };
        s.apply(create("a"));
        let first = s.topics["a"].partitions[0].group;
        s.apply(MetaCommand::DeleteTopic { name: "a".into() });
        s.apply(create("a"));
        assert!(s.topics["a"].partitions[0].group > first);
    }

    #[test]
    fn create_partitions_only_grows_with_fresh_groups() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        s.apply(MetaCommand::RegisterNode(node(2)));
        s.apply(MetaCommand::CreateTopic {
            name: "t".into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![1], vec![2]],
        });
        // Another topic in between: group ids keep counting up across topics.
        s.apply(MetaCommand::CreateTopic {
            name: "u".into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![1]],
        });
        let add =
            |name: &str, count: u32, assignment: Vec<Vec<NodeId>>| MetaCommand::CreatePartitions {
                name: name.into(),
                count,
                assignment,
            };
        let MetaResponse::TopicCreated(t) =
            s.apply(add("t", 5, vec![vec![1, 2], vec![2, 1], vec![1]]))
        else {
            panic!("partitions not added")
        };
        assert_eq!(t.partitions.len(), 5);
        let used: Vec<GroupId> = s
            .topics
            .values()
            .flat_map(|t| t.partitions.iter().map(|p| p.group))
            .collect();
        let mut distinct = used.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            used.len(),
            "a group id used twice: {used:?}"
        );
        for (i, p) in t.partitions.iter().enumerate() {
            assert_eq!(p.partition, i as u32);
        }
        assert_eq!(t.partitions[2].replicas, vec![1, 2]);
        assert_eq!(t.partitions[2].bootstrap, vec![1, 2]);
        assert!(t.partitions[2].group > s.topics["u"].partitions[0].group);

        let before = s.clone();
        for (cmd, invalid_partitions) in [
            // Not growing: the same count, or fewer.
            (add("t", 5, vec![]), true),
            (add("t", 3, vec![]), true),
            // A proposal made when the topic had fewer partitions.
            (add("t", 6, vec![vec![1], vec![2]]), true),
            (add("t", 6, vec![vec![7]]), false),
            (add("t", 6, vec![vec![1, 1]]), false),
            (add("t", 6, vec![vec![]]), false),
        ] {
            match s.apply(cmd) {
                MetaResponse::Error(MetaError::InvalidPartitions(_)) => assert!(invalid_partitions),
                MetaResponse::Error(MetaError::InvalidArgument(_)) => assert!(!invalid_partitions),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        assert_eq!(
            s.apply(add("missing", 2, vec![vec![1]])),
            MetaResponse::Error(MetaError::UnknownTopic("missing".into()))
        );
        assert_eq!(s, before, "a refused command changes nothing");
    }

    #[test]
    fn assignment_to_unknown_node_is_rejected() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        let r = s.apply(MetaCommand::CreateTopic {
            name: "t".into(),
            replication_factor: 1,
            configs: BTreeMap::new(),
            assignment: vec![vec![7]],
        });
        assert!(matches!(
            r,
            MetaResponse::Error(MetaError::InvalidArgument(_))
        ));
        assert!(s.topics.is_empty());
    }

    #[test]
    fn cluster_id_is_set_once() {
        let mut s = MetadataState::default();
        assert_eq!(
            s.apply(MetaCommand::InitCluster {
                cluster_id: "a".into()
            }),
            MetaResponse::Ok
        );
        assert!(matches!(
            s.apply(MetaCommand::InitCluster {
                cluster_id: "b".into()
            }),
            MetaResponse::Error(MetaError::ClusterIdMismatch { .. })
        ));
        assert_eq!(s.cluster_id.as_deref(), Some("a"));
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut s = MetadataState::default();
        s.apply(MetaCommand::RegisterNode(node(1)));
        s.apply(MetaCommand::CommitOffsets {
            group: "g".into(),
            offsets: vec![(
                "t".into(),
                3,
                CommittedOffset {
                    offset: 42,
                    metadata: String::new(),
                    commit_time_ms: 1,
                },
            )],
        });
        let json = serde_json::to_vec(&s).unwrap();
        let back: MetadataState = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn producer_id_blocks_never_overlap() {
        let mut s = MetadataState::default();
        let a = s.apply(MetaCommand::AllocateProducerIds { count: 100 });
        let b = s.apply(MetaCommand::AllocateProducerIds { count: 10 });
        assert_eq!(a, MetaResponse::ProducerIds { first: 0 });
        assert_eq!(b, MetaResponse::ProducerIds { first: 100 });
        // A state saved before producer ids existed starts them at 0.
        let mut json: serde_json::Value = serde_json::to_value(&s).unwrap();
        json.as_object_mut().unwrap().remove("next_producer_id");
        let old: MetadataState = serde_json::from_value(json).unwrap();
        assert_eq!(old.next_producer_id, 0);
        assert_eq!(s.next_producer_id, 110);
    }
}

//! Text and JSON renderings of topics, nodes and cluster status.

use std::collections::BTreeMap;

use cairn_client::proto::{
    ClusterStatusResponse, Node, PartitionMetadata, PartitionRef, TopicMetadata,
};
use serde_json::{json, Value};

use crate::output::{join_ids, opt_id, render_table};

fn sorted_configs(t: &TopicMetadata) -> BTreeMap<&str, &str> {
    t.configs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// One partition as JSON.
pub fn partition_json(p: &PartitionMetadata) -> Value {
    json!({
        "partition": p.partition,
        "leader": p.leader,
        "leader_epoch": p.leader_epoch,
        "replicas": p.replicas,
        "healthy_replicas": p.healthy_replicas,
        "log_start_offset": p.log_start_offset,
        "high_watermark": p.high_watermark,
        "raft_group": p.raft_group,
        "reassignment": (!p.reassignment.is_empty()).then_some(&p.reassignment),
        "voters": p.voters,
    })
}

/// A topic with its partitions as JSON.
pub fn topic_json(t: &TopicMetadata) -> Value {
    let mut partitions: Vec<&PartitionMetadata> = t.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition);
    json!({
        "name": t.name,
        "topic_id": t.topic_id,
        "replication_factor": t.replication_factor,
        "partitions": partitions.into_iter().map(partition_json).collect::<Vec<_>>(),
        "configs": sorted_configs(t),
    })
}

/// A topic's header lines and partition table.
pub fn topic_text(t: &TopicMetadata) -> String {
    let mut out = format!(
        "topic {}  id {}  partitions {}  replication factor {}\n",
        t.name,
        t.topic_id,
        t.partitions.len(),
        t.replication_factor
    );
    let configs = sorted_configs(t);
    if !configs.is_empty() {
        let list: Vec<String> = configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("configs {}\n", list.join(" ")));
    }
    let mut partitions: Vec<&PartitionMetadata> = t.partitions.iter().collect();
    partitions.sort_by_key(|p| p.partition);
    let rows: Vec<Vec<String>> = partitions
        .iter()
        .map(|p| {
            vec![
                p.partition.to_string(),
                opt_id(p.leader),
                p.leader_epoch.to_string(),
                join_ids(&p.replicas),
                join_ids(&p.healthy_replicas),
                p.log_start_offset.to_string(),
                p.high_watermark.to_string(),
            ]
        })
        .collect();
    out.push_str(&render_table(
        &[
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "HEALTHY",
            "LOG-START",
            "HIGH-WATERMARK",
        ],
        &rows,
    ));
    // Replica changes in progress, with what each waits for.
    for p in partitions.iter().filter(|p| !p.reassignment.is_empty()) {
        out.push_str(&format!(
            "partition {} reassigning {}\n",
            p.partition, p.reassignment
        ));
    }
    out
}

/// The topic list as a table.
pub fn topic_list_text(topics: &[TopicMetadata]) -> String {
    let mut sorted: Vec<&TopicMetadata> = topics.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|t| {
            let leaderless = t.partitions.iter().filter(|p| p.leader.is_none()).count();
            vec![
                t.name.clone(),
                t.partitions.len().to_string(),
                t.replication_factor.to_string(),
                leaderless.to_string(),
            ]
        })
        .collect();
    render_table(&["TOPIC", "PARTITIONS", "RF", "LEADERLESS"], &rows)
}

/// The topic list as JSON: an array of topics.
pub fn topic_list_json(topics: &[TopicMetadata]) -> Value {
    let mut sorted: Vec<&TopicMetadata> = topics.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    Value::Array(sorted.into_iter().map(topic_json).collect())
}

/// A node as JSON.
pub fn node_json(n: &Node) -> Value {
    json!({
        "id": n.id,
        "grpc_addr": n.grpc_addr,
        "rpc_addr": n.rpc_addr,
        "admin_addr": n.admin_addr,
        "kafka_addr": n.kafka_addr,
        "rack": n.rack,
        "alive": n.alive,
        "metadata_voter": n.metadata_voter,
        "draining": n.draining,
    })
}

fn partition_ref_json(p: &PartitionRef) -> Value {
    json!({
        "topic": p.topic,
        "partition": p.partition,
        "leader": p.leader,
        "replicas": p.replicas,
        "healthy_replicas": p.healthy_replicas,
    })
}

/// Cluster status as JSON.
pub fn cluster_status_json(s: &ClusterStatusResponse) -> Value {
    let mut nodes: Vec<&Node> = s.nodes.iter().collect();
    nodes.sort_by_key(|n| n.id);
    json!({
        "cluster_id": s.cluster_id,
        "answered_by": s.answered_by,
        "metadata_leader": s.metadata_leader,
        "topic_count": s.topic_count,
        "partition_count": s.partition_count,
        "nodes": nodes.into_iter().map(node_json).collect::<Vec<_>>(),
        "leaderless_partitions": s.leaderless_partitions.iter().map(partition_ref_json).collect::<Vec<_>>(),
        "under_replicated_partitions": s.under_replicated_partitions.iter().map(partition_ref_json).collect::<Vec<_>>(),
        "removed_nodes": s.removed_nodes,
    })
}

fn partition_refs_text(title: &str, refs: &[PartitionRef]) -> String {
    if refs.is_empty() {
        return format!("{title}: none\n");
    }
    let rows: Vec<Vec<String>> = refs
        .iter()
        .map(|p| {
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                opt_id(p.leader),
                join_ids(&p.replicas),
                join_ids(&p.healthy_replicas),
            ]
        })
        .collect();
    format!(
        "{title}: {}\n{}",
        refs.len(),
        render_table(
            &["TOPIC", "PARTITION", "LEADER", "REPLICAS", "HEALTHY"],
            &rows
        )
    )
}

/// Cluster status as text.
pub fn cluster_status_text(s: &ClusterStatusResponse) -> String {
    let mut out = format!(
        "cluster {}  (answered by node {})\nmetadata leader: {}\ntopics: {}  partitions: {}\n\n",
        s.cluster_id,
        s.answered_by,
        opt_id(s.metadata_leader),
        s.topic_count,
        s.partition_count
    );
    let mut nodes: Vec<&Node> = s.nodes.iter().collect();
    nodes.sort_by_key(|n| n.id);
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            vec![
                n.id.to_string(),
                match (n.alive, n.draining) {
                    (true, false) => "yes",
                    (true, true) => "yes, draining",
                    (false, false) => "NO",
                    (false, true) => "NO, draining",
                }
                .to_owned(),
                if n.metadata_voter { "yes" } else { "no" }.to_owned(),
                n.grpc_addr.clone(),
                n.rpc_addr.clone(),
                n.admin_addr.clone(),
                n.kafka_addr.clone(),
                if n.rack.is_empty() {
                    "-".to_owned()
                } else {
                    n.rack.clone()
                },
            ]
        })
        .collect();
    out.push_str(&render_table(
        &[
            "NODE", "ALIVE", "VOTER", "GRPC", "RPC", "ADMIN", "KAFKA", "RACK",
        ],
        &rows,
    ));
    out.push('\n');
    out.push_str(&partition_refs_text(
        "partitions without a leader",
        &s.leaderless_partitions,
    ));
    out.push_str(&partition_refs_text(
        "under-replicated partitions",
        &s.under_replicated_partitions,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic() -> TopicMetadata {
        TopicMetadata {
            name: "orders".into(),
            topic_id: 7,
            replication_factor: 3,
            partitions: vec![
                PartitionMetadata {
                    partition: 1,
                    leader: None,
                    leader_epoch: 0,
                    replicas: vec![2, 3, 1],
                    healthy_replicas: vec![],
                    ..Default::default()
                },
                PartitionMetadata {
                    partition: 0,
                    leader: Some(1),
                    leader_epoch: 4,
                    replicas: vec![1, 2, 3],
                    healthy_replicas: vec![1, 2],
                    log_start_offset: 10,
                    high_watermark: 250,
                    raft_group: 12,
                    reassignment: String::new(),
                    voters: vec![1, 2, 3],
                },
            ],
            configs: [("retention.ms".to_string(), "1000".to_string())]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn topic_text_table() {
        let text = topic_text(&topic());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "topic orders  id 7  partitions 2  replication factor 3"
        );
        assert_eq!(lines[1], "configs retention.ms=1000");
        assert!(lines[2].starts_with("PARTITION  LEADER  EPOCH  REPLICAS"));
        assert!(lines[3].starts_with("0          1       4      1,2,3     1,2      10         250"));
        assert!(lines[4].starts_with("1          -       0      2,3,1"));
    }

    #[test]
    fn topic_json_sorted() {
        let v = topic_json(&topic());
        assert_eq!(v["name"], "orders");
        assert_eq!(v["partitions"][0]["partition"], 0);
        assert_eq!(v["partitions"][0]["leader"], 1);
        assert_eq!(v["partitions"][1]["leader"], Value::Null);
        assert_eq!(v["configs"]["retention.ms"], "1000");
        let list = topic_list_json(&[topic()]);
        assert_eq!(list.as_array().map(Vec::len), Some(1));
        assert!(topic_list_text(&[topic()]).contains("orders  2           3   1"));
    }

    #[test]
    fn cluster_status_views() {
        let s = ClusterStatusResponse {
            cluster_id: "c1".into(),
            metadata_leader: Some(1),
            nodes: vec![
                Node {
                    id: 2,
                    grpc_addr: "h2:1".into(),
                    alive: false,
                    ..Default::default()
                },
                Node {
                    id: 1,
                    grpc_addr: "h1:1".into(),
                    alive: true,
                    metadata_voter: true,
                    rack: "r1".into(),
                    ..Default::default()
                },
            ],
            leaderless_partitions: vec![PartitionRef {
                topic: "t".into(),
                partition: 3,
                replicas: vec![2],
                healthy_replicas: vec![],
                leader: None,
            }],
            under_replicated_partitions: vec![],
            topic_count: 1,
            partition_count: 4,
            answered_by: 1,
            removed_nodes: vec![5],
        };
        let text = cluster_status_text(&s);
        assert!(text.contains("metadata leader: 1"));
        assert!(text.contains("partitions without a leader: 1"));
        assert!(text.contains("under-replicated partitions: none"));
        let node_lines: Vec<&str> = text.lines().filter(|l| l.starts_with(['1', '2'])).collect();
        assert!(node_lines[0].starts_with("1     yes    yes"));
        assert!(node_lines[1].starts_with("2     NO     no"));
        let v = cluster_status_json(&s);
        assert_eq!(v["nodes"][0]["id"], 1);
        assert_eq!(v["leaderless_partitions"][0]["partition"], 3);
        assert_eq!(v["metadata_leader"], 1);
    }
}

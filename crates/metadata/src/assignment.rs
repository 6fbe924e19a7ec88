use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::state::NodeId;
use crate::state::NodeInfo;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssignError {
    #[error("replication factor {replication_factor} is larger than the {nodes} available nodes")]
    NotEnoughNodes {
        replication_factor: u32,
        nodes: usize,
    },
    #[error("replication factor must be at least 1")]
    ZeroReplicationFactor,
    #[error("a topic needs at least one partition")]
    ZeroPartitions,
}

/// Chooses replicas for `partitions` new partitions, `replication_factor` each.
///
/// Greedy and deterministic: each replica goes to the node with the fewest
/// replicas so far (counting `load`, the existing replicas per node), preferring
/// racks the partition does not use yet; among those, the first replica (the
/// preferred leader) goes to the node leading the fewest new partitions. Ties
/// break by a rotation over node ids so that equal nodes take turns.
pub fn assign_replicas(
    nodes: &[NodeInfo],
    load: &BTreeMap<NodeId, usize>,
    partitions: u32,
    replication_factor: u32,
) -> Result<Vec<Vec<NodeId>>, AssignError> {
    if replication_factor == 0 {
        return Err(AssignError::ZeroReplicationFactor);
    }
    if partitions == 0 {
        return Err(AssignError::ZeroPartitions);
    }
    if replication_factor as usize > nodes.len() {
        return Err(AssignError::NotEnoughNodes {
            replication_factor,
            nodes: nodes.len(),
        });
    }
    let mut ids: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
    ids.sort_unstable();
    let rack: BTreeMap<NodeId, Option<&str>> =
        nodes.iter().map(|n| (n.id, n.rack.as_deref())).collect();
    let mut replicas_on: BTreeMap<NodeId, usize> = ids
        .iter()
        .map(|id| (*id, load.get(id).copied().unwrap_or(0)))
        .collect();
    let mut leaders_on: BTreeMap<NodeId, usize> = ids.iter().map(|id| (*id, 0)).collect();

    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as usize {
        let rotation = |id: NodeId| {
            let pos = ids.iter().position(|x| *x == id).unwrap_or(0);
            (pos + ids.len() - p % ids.len()) % ids.len()
        };
        let mut chosen: Vec<NodeId> = Vec::with_capacity(replication_factor as usize);
        let mut racks_used: BTreeSet<Option<&str>> = BTreeSet::new();
        for slot in 0..replication_factor {
            let best = ids
                .iter()
                .filter(|id| !chosen.contains(id))
                .min_by_key(|id| {
                    let rack_reuse =
                        usize::from(racks_used.contains(&rack[*id]) && rack[*id].is_some());
                    let leader_load = if slot == 0 { leaders_on[*id] } else { 0 };
                    (rack_reuse, replicas_on[*id], leader_load, rotation(**id))
                })
                .copied();
            let Some(best) = best else { break };
            chosen.push(best);
            racks_used.insert(rack[&best]);
            *replicas_on.entry(best).or_default() += 1;
            if slot == 0 {
                *leaders_on.entry(best).or_default() += 1;
            }
        }
        out.push(chosen);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn nodes(n: u64, racks: u64) -> Vec<NodeInfo> {
        (1..=n)
            .map(|id| NodeInfo {
                id,
                rpc_addr: String::new(),
                grpc_addr: String::new(),
                admin_addr: String::new(),
                kafka_addr: String::new(),
                rack: (racks > 0).then(|| format!("r{}", id % racks)),
                incarnation: String::new(),
            })
            .collect()
    }

    #[test]
    fn three_nodes_rf3_spreads_leaders_evenly() {
        let a = assign_replicas(&nodes(3, 0), &BTreeMap::new(), 6, 3).unwrap();
        let mut leaders = BTreeMap::new();
        for r in &a {
            assert_eq!(r.len(), 3);
            *leaders.entry(r[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    }

    #[test]
    fn rf_larger_than_cluster_is_an_error() {
        assert_eq!(
            assign_replicas(&nodes(2, 0), &BTreeMap::new(), 1, 3),
            Err(AssignError::NotEnoughNodes {
                replication_factor: 3,
                nodes: 2
            })
        );
    }

    #[test]
    fn replicas_span_racks_when_possible() {
        let a = assign_replicas(&nodes(6, 3), &BTreeMap::new(), 12, 3).unwrap();
        for r in a {
            let racks: BTreeSet<u64> = r.iter().map(|id| id % 3).collect();
            assert_eq!(racks.len(), 3, "replicas {r:?} share a rack");
        }
    }

    proptest! {
        #[test]
        fn replicas_are_distinct_and_balanced(n in 1u64..8, rf in 1u32..4, parts in 1u32..40) {
            prop_assume!(rf as u64 <= n);
            let a = assign_replicas(&nodes(n, 0), &BTreeMap::new(), parts, rf).unwrap();
            prop_assert_eq!(a.len(), parts as usize);
            let mut count = BTreeMap::new();
            for r in &a {
                let set: BTreeSet<_> = r.iter().collect();
                prop_assert_eq!(set.len(), rf as usize);
                for id in r { *count.entry(*id).or_insert(0usize) += 1; }
            }
            let max = count.values().max().copied().unwrap_or(0);
            let min = if count.len() < n as usize { 0 } else { count.values().min().copied().unwrap_or(0) };
            prop_assert!(max - min <= 1, "unbalanced: {:?}", count);
        }
    }
}

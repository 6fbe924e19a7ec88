//! Network partitions between the nodes (clients still reach every node):
//! - isolate: one node (often a leader) cut off from all others;
//! - split: a random majority and minority that cannot talk;
//! - ring (5+ nodes): every node hears only from a majority of its
//!   neighbours, and each node's majority is a different one (one-way cuts);
//! - bridge (3-4 nodes): two sides cut apart except for one node that sees
//!   both (with TCP a one-way cut breaks a link both ways, so a 3-node ring
//!   would be a total partition).
//!
//! Healed by removing every packet filter.

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::{Fault, FaultCx, Injected};
use crate::hosts::Heal;
use crate::hosts::NodeId;
use crate::target::Target;
use crate::ChaosError;

/// `kind`: 0 isolate, 1 split, 2 bridge/ring; `None` picks one at random.
pub struct Partition {
    pub kind: Option<u32>,
}

/// For each node, the nodes it must not hear from.
type Cuts = Vec<(NodeId, Vec<NodeId>)>;

/// Two sides that cannot talk either way.
fn split(a: &[NodeId], b: &[NodeId]) -> Cuts {
    let mut cuts: Cuts = a.iter().map(|n| (*n, b.to_vec())).collect();
    cuts.extend(b.iter().map(|n| (*n, a.to_vec())));
    cuts
}

/// Node `nodes[i]` hears only from itself and the next `majority - 1` nodes
/// around the ring.
fn ring(nodes: &[NodeId]) -> Cuts {
    let n = nodes.len();
    let majority = n / 2 + 1;
    (0..n)
        .map(|i| {
            let hears: Vec<NodeId> = (0..majority).map(|k| nodes[(i + k) % n]).collect();
            let deaf = nodes
                .iter()
                .copied()
                .filter(|x| !hears.contains(x))
                .collect();
            (nodes[i], deaf)
        })
        .collect()
}

impl Fault for Partition {
    fn name(&self) -> &'static str {
        match self.kind {
            Some(0) => "isolate",
            _ => "partition",
        }
    }

    fn inject<'a>(
        &'a self,
        cx: &'a FaultCx,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<Injected, ChaosError>> {
        async move {
            let mut nodes = cx.hosts.nodes();
            let kind = match self.kind {
                Some(k) => k,
                None => rng.random_range(0..3),
            };
            let (cuts, description) = match kind {
                0 => {
                    let (node, who) = Target::random(rng).resolve(cx, rng).await?;
                    let others: Vec<NodeId> =
                        nodes.iter().copied().filter(|n| *n != node).collect();
                    (split(&[node], &others), format!("isolate {who}"))
                }
                1 => {
                    nodes.shuffle(rng);
                    let minority = nodes.len() / 2;
                    let (a, b) = nodes.split_at(minority);
                    (
                        split(a, b),
                        format!("split minority {a:?} | majority {b:?}"),
                    )
                }
                _ if nodes.len() < 5 => {
                    // With TCP, a one-way cut breaks the link both ways, so a
                    // ring of 3 is a total partition: a bridge instead, where
                    // one node sees both sides and each side + it is a majority.
                    nodes.shuffle(rng);
                    let (a, rest) = nodes.split_at(1);
                    let (bridge, b) = rest.split_at(1);
                    (
                        split(a, b),
                        format!("bridge: {a:?} | {b:?}, node {} sees both", bridge[0]),
                    )
                }
                _ => {
                    nodes.shuffle(rng);
                    let cuts = ring(&nodes);
                    let shown: Vec<String> = cuts
                        .iter()
                        .map(|(n, deaf)| format!("{n} deaf to {deaf:?}"))
                        .collect();
                    (cuts, format!("ring of majorities: {}", shown.join(", ")))
                }
            };
            for (node, deaf) in cuts {
                if !deaf.is_empty() {
                    cx.hosts.block(node, deaf).await?;
                }
            }
            Ok(Injected {
                description: format!("partition: {description}"),
                heal: Heal::Network,
            })
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_gives_every_node_a_different_majority() {
        let cuts = ring(&[1, 2, 3, 4, 5]);
        let mut heard: Vec<Vec<NodeId>> = cuts
            .iter()
            .map(|(n, deaf)| {
                assert!(!deaf.contains(n));
                assert_eq!(deaf.len(), 2, "each node hears a majority of 5");
                (1..=5).filter(|x| !deaf.contains(x)).collect()
            })
            .collect();
        heard.sort();
        heard.dedup();
        assert_eq!(heard.len(), 5, "five different majorities");
        let three = ring(&[1, 2, 3]);
        assert_eq!(three, vec![(1, vec![3]), (2, vec![1]), (3, vec![2])]);
    }

    #[test]
    fn split_is_symmetric() {
        let cuts = split(&[1], &[2, 3]);
        assert_eq!(cuts, vec![(1, vec![2, 3]), (2, vec![1]), (3, vec![1])]);
    }
}

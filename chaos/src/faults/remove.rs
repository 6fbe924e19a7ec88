//! A node that joined is decommissioned and removed, in two steps under
//! other faults. First `DecommissionNode` moves every partition off it while
//! a node (a quarter of the time the draining node itself) is killed or
//! frozen; the drain then goes on through later faults. Each later
//! injection tries `RemoveNode`, which is refused while a partition's
//! committed Raft membership may still hold the node; meanwhile another
//! node is killed. Once removed, the node is killed and its data deleted,
//! and its id is never used again. Only nodes that joined (`join`) are
//! removed: the first nodes are the metadata voters. One that holds
//! replicas of the workload's topic is preferred.

use std::sync::Mutex;

use cairn_client::ErrorCode;
use futures::future::BoxFuture;
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::Rng;

use super::{Fault, FaultCx, Injected};
use crate::hosts::Heal;
use crate::hosts::NodeId;
use crate::ChaosError;

#[derive(Default)]
pub struct Remove {
    /// The node being drained, once decommissioned and until removed.
    draining: Mutex<Option<NodeId>>,
}

impl Remove {
    fn draining(&self) -> Option<NodeId> {
        *self.draining.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_draining(&self, node: Option<NodeId>) {
        *self.draining.lock().unwrap_or_else(|e| e.into_inner()) = node;
    }
}

/// kill -9 (or, 30 % of the time, SIGSTOP) one of `among`; what heals it.
async fn knock_out(
    cx: &FaultCx,
    rng: &mut StdRng,
    among: &[NodeId],
) -> Result<(String, Heal), ChaosError> {
    let victim = among[rng.random_range(0..among.len())];
    if rng.random_bool(0.3) {
        cx.hosts.pause(victim).await?;
        Ok((
            format!("node {victim} frozen (SIGSTOP)"),
            Heal::Resume(vec![victim]),
        ))
    } else {
        cx.hosts.kill(victim).await?;
        Ok((
            format!("node {victim} down (kill -9)"),
            Heal::Restart(vec![victim]),
        ))
    }
}

impl Fault for Remove {
    fn name(&self) -> &'static str {
        "remove"
    }

    fn inject<'a>(
        &'a self,
        cx: &'a FaultCx,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<Injected, ChaosError>> {
        async move {
            let voters = cx.hosts.voters();
            if let Some(node) = self.draining() {
                match cx.client.remove_node(node).await {
                    Ok(()) => {
                        cx.hosts.retire(node).await?;
                        self.set_draining(None);
                        return Ok(Injected {
                            description: format!(
                                "node {node} removed from the cluster; killed, its data deleted"
                            ),
                            heal: Heal::Nothing,
                        });
                    }
                    Err(e) => {
                        let others: Vec<NodeId> = cx
                            .hosts
                            .nodes()
                            .into_iter()
                            .filter(|n| *n != node)
                            .collect();
                        let (down, heal) = knock_out(cx, rng, &others).await?;
                        let why = if e.code() == Some(ErrorCode::NodeInUse) {
                            "still held"
                        } else {
                            "refused"
                        };
                        return Ok(Injected {
                            description: format!(
                                "node {node} not removed yet ({why}: {e}); meanwhile {down}"
                            ),
                            heal,
                        });
                    }
                }
            }
            let joined: Vec<NodeId> = cx
                .hosts
                .nodes()
                .into_iter()
                .filter(|n| !voters.contains(n))
                .collect();
            if joined.is_empty() {
                return Err(ChaosError::NoTarget(
                    "no joined node to remove (the `join` fault adds them)".into(),
                ));
            }
            // Preferably one that holds replicas of the workload's topic, so
            // that the drain moves something.
            let holding: Vec<NodeId> = match cx.client.describe_topic(&cx.topic).await {
                Ok(t) => joined
                    .iter()
                    .copied()
                    .filter(|n| t.partitions.iter().any(|p| p.replicas.contains(n)))
                    .collect(),
                Err(_) => Vec::new(),
            };
            let pool = if holding.is_empty() {
                &joined
            } else {
                &holding
            };
            let node = pool[rng.random_range(0..pool.len())];
            let all = cx.hosts.nodes();
            let among = if rng.random_bool(0.25) {
                vec![node]
            } else {
                all.into_iter().filter(|n| *n != node).collect()
            };
            let (down, heal) = knock_out(cx, rng, &among).await?;
            let description = match cx.client.decommission_node(node).await {
                Ok(moves) => {
                    self.set_draining(Some(node));
                    format!(
                        "node {node} decommissioned ({} partitions moved off it) while {down}",
                        moves.len()
                    )
                }
                Err(e) => format!("node {node} not decommissioned ({e}) while {down}"),
            };
            Ok(Injected { description, heal })
        }
        .boxed()
    }
}

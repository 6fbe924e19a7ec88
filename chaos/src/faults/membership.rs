//! A partition moved to other nodes while a node is down or frozen: the
//! paths of replica changes (learners added, voters changed, replicas
//! removed) under the faults they must survive. One partition of the
//! workload's topic gets a new replica set of the same size, chosen at
//! random among all nodes; at the same time one node is killed (`kill -9`)
//! or frozen (SIGSTOP). Half of the time that node is one the partition is
//! moving to, so the change waits for a node that is down and must resume
//! once it is back (or be replaced by the next change). Healed by starting
//! or thawing the node; the partition stays where it was moved, and the
//! next fault moves it again. Needs more nodes than the topic's
//! replication factor (`--nodes 4` or more for RF3).

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::{Fault, FaultCx, Injected};
use crate::hosts::Heal;
use crate::ChaosError;

pub struct Membership;

impl Fault for Membership {
    fn name(&self) -> &'static str {
        "membership"
    }

    fn inject<'a>(
        &'a self,
        cx: &'a FaultCx,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<Injected, ChaosError>> {
        async move {
            let nodes = cx.hosts.nodes();
            let p = rng.random_range(0..cx.partitions.max(1));
            let current: Vec<u64> = cx
                .client
                .describe_topic(&cx.topic)
                .await
                .map_err(|e| ChaosError::NoTarget(format!("describe {}: {e}", cx.topic)))?
                .partitions
                .into_iter()
                .find(|m| m.partition == p)
                .map(|m| m.replicas)
                .ok_or_else(|| ChaosError::NoTarget(format!("partition {p} not found")))?;
            if nodes.len() <= current.len() {
                return Err(ChaosError::NoTarget(format!(
                    "{} nodes cannot move a partition of {} replicas",
                    nodes.len(),
                    current.len()
                )));
            }
            // A new replica set of the same size that differs from the
            // current one in at least one node.
            let mut target = current.clone();
            while sorted(&target) == sorted(&current) {
                let mut shuffled = nodes.clone();
                shuffled.shuffle(rng);
                target = shuffled[..current.len()].to_vec();
            }
            let added: Vec<u64> = target.iter().copied().filter(|n| !current.contains(n)).collect();
            let victim = if rng.random_bool(0.5) {
                added[rng.random_range(0..added.len())]
            } else {
                nodes[rng.random_range(0..nodes.len())]
            };
            let freeze = rng.random_bool(0.3);
            if freeze {
                cx.hosts.pause(victim).await?;
            } else {
                cx.hosts.kill(victim).await?;
            }
            let moved = cx.client.reassign_partition(&cx.topic, p, &target).await;
            let how = if freeze { "SIGSTOP" } else { "kill -9" };
            let what = match moved {
                Ok(_) => format!("partition {p} moved {current:?} -> {target:?} while node {victim} is down ({how})"),
                Err(e) => format!("partition {p} not moved ({e}) while node {victim} is down ({how})"),
            };
            Ok(Injected {
                description: what,
                heal: if freeze {
                    Heal::Resume(vec![victim])
                } else {
                    Heal::Restart(vec![victim])
                },
            })
        }
        .boxed()
    }
}

fn sorted(v: &[u64]) -> Vec<u64> {
    let mut v = v.to_vec();
    v.sort_unstable();
    v
}

//! The metadata group under churn: a metadata voter (the leader, or one at
//! random) is killed (`kill -9`) while topics are deleted and created again
//! (producer ids are allocated only when the workload's clients reconnect;
//! the fault does not force it), so that its restart replays, or
//! installs, metadata snapshots cut in the middle of that churn. The run
//! starts the nodes with a small `metadata_snapshot_entries` (50) when
//! this fault is on, so snapshots are frequent. Healed by starting the node
//! again. The workload's own topic is never touched: its checker sees any
//! damage the churn does to the metadata (assignments, producer ids).

use std::collections::HashMap;

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::Rng;

use super::{Fault, FaultCx, Injected};
use crate::hosts::Heal;
use crate::target::Target;
use crate::ChaosError;

/// The side topic deleted and created again.
const CHURN_TOPIC: &str = "nemesis-churn";

pub struct Metadata;

impl Fault for Metadata {
    fn name(&self) -> &'static str {
        "metadata"
    }

    fn inject<'a>(
        &'a self,
        cx: &'a FaultCx,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<Injected, ChaosError>> {
        async move {
            let target = if rng.random_bool(0.5) {
                Target::MetadataLeader
            } else {
                Target::AnyNode
            };
            let (node, who) = target.resolve(cx, rng).await?;
            let rounds = rng.random_range(1..4u32);
            let kill_after = rng.random_range(0..rounds);
            let mut done = Vec::new();
            for round in 0..rounds {
                if round == kill_after {
                    cx.hosts.kill(node).await?;
                }
                // Errors are expected while the metadata group elects a new
                // leader; the churn is best effort.
                let deleted = cx.client.delete_topic(CHURN_TOPIC).await.is_ok();
                let partitions = rng.random_range(1..4u32);
                let created = cx
                    .client
                    .create_topic(CHURN_TOPIC, partitions, 2, HashMap::new())
                    .await
                    .is_ok();
                done.push(format!(
                    "{}{}",
                    if deleted { "delete " } else { "" },
                    if created { "create" } else { "(create failed)" }
                ));
            }
            Ok(Injected {
                description: format!("kill -9 {who} during topic churn ({})", done.join(", ")),
                heal: Heal::Restart(vec![node]),
            })
        }
        .boxed()
    }
}

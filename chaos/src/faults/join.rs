//! A new node joins the running cluster (`--join`, through a random live
//! node) on a spare host, a third of the time while another node is killed.
//! Once registered it takes one or two partitions of the workload's topic
//! (each replacing a random replica), as an operator rebalancing onto a new
//! node would; from then on `membership` moves partitions to it too and
//! `remove` may decommission it. Needs spare hosts
//! (`--spares`); without one left, it has no target.

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::Rng;

use super::{Fault, FaultCx, Injected};
use crate::hosts::Heal;
use crate::ChaosError;

pub struct Join;

impl Fault for Join {
    fn name(&self) -> &'static str {
        "join"
    }

    fn inject<'a>(
        &'a self,
        cx: &'a FaultCx,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<Injected, ChaosError>> {
        async move {
            let Some(&node) = cx.hosts.spares().first() else {
                return Err(ChaosError::NoTarget("no spare host left to join".into()));
            };
            let running: Vec<u64> = cx
                .hosts
                .nodes()
                .into_iter()
                .filter(|n| cx.hosts.is_running(*n))
                .collect();
            if running.is_empty() {
                return Err(ChaosError::NoTarget("no running node to join through".into()));
            }
            let via = running[rng.random_range(0..running.len())];
            let victim = rng
                .random_bool(1.0 / 3.0)
                .then(|| running[rng.random_range(0..running.len())])
                .filter(|v| *v != via);
            if let Some(v) = victim {
                cx.hosts.kill(v).await?;
            }
            cx.hosts.join(node, via).await?;
            let moved = take_a_share(cx, rng, node).await;
            Ok(Injected {
                description: match victim {
                    Some(v) => format!("node {node} joins through node {via} while node {v} is down (kill -9); {moved}"),
                    None => format!("node {node} joins through node {via}; {moved}"),
                },
                heal: victim.map_or(Heal::Nothing, |v| Heal::Restart(vec![v])),
            })
        }
        .boxed()
    }
}

/// Once `node` is registered (waited for up to 15 s), moves one or two
/// partitions of the workload's topic onto it, each replacing a random
/// replica, as an operator rebalancing onto a new node would. Says what it did.
async fn take_a_share(cx: &FaultCx, rng: &mut StdRng, node: u64) -> String {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let registered = cx
            .client
            .cluster_status()
            .await
            .map(|s| s.nodes.iter().any(|n| n.id == node))
            .unwrap_or(false);
        if registered {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            return format!("node {node} not registered after 15 s: nothing moved to it");
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let topic = match cx.client.describe_topic(&cx.topic).await {
        Ok(t) => t,
        Err(e) => return format!("nothing moved to it (describe: {e})"),
    };
    let mut done = Vec::new();
    for _ in 0..rng.random_range(1..=2u32) {
        let p = &topic.partitions[rng.random_range(0..topic.partitions.len())];
        if p.replicas.contains(&node) || p.replicas.is_empty() {
            continue;
        }
        let mut target = p.replicas.clone();
        let slot = rng.random_range(0..target.len());
        target[slot] = node;
        match cx
            .client
            .reassign_partition(&cx.topic, p.partition, &target)
            .await
        {
            Ok(()) => done.push(format!(
                "partition {} {:?} -> {target:?}",
                p.partition, p.replicas
            )),
            Err(e) => done.push(format!("partition {} not moved ({e})", p.partition)),
        }
    }
    if done.is_empty() {
        "nothing moved to it".to_string()
    } else {
        done.join(", ")
    }
}

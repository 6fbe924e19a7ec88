//! A new node joins the running cluster (`--join`, through a random live
//! node) on a spare host, a third of the time while another node is killed.
//! From then on it is one of the cluster's nodes: `membership` moves
//! partitions to it, `remove` may decommission it. Needs spare hosts
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
            Ok(Injected {
                description: match victim {
                    Some(v) => format!("node {node} joins through node {via} while node {v} is down (kill -9)"),
                    None => format!("node {node} joins through node {via}"),
                },
                heal: victim.map_or(Heal::Nothing, |v| Heal::Restart(vec![v])),
            })
        }
        .boxed()
    }
}

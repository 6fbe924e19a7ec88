//! Packet delay with jitter, loss and reordering (`tc netem`) on one node or
//! every node; healed by removing it. Where the kernel has no netem (this
//! project's CI machines), the hosts apply random loss (nftables) and a
//! bandwidth limit (tbf), and the description says so.

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::Rng;

use super::{Fault, FaultCx, Injected};
use crate::hosts::Heal;
use crate::hosts::NetemSpec;
use crate::ChaosError;

pub struct Netem;

impl Fault for Netem {
    fn name(&self) -> &'static str {
        "netem"
    }

    fn inject<'a>(
        &'a self,
        cx: &'a FaultCx,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<Injected, ChaosError>> {
        async move {
            let all = cx.hosts.nodes();
            let nodes = if rng.random_bool(0.5) {
                all
            } else {
                vec![all[rng.random_range(0..all.len())]]
            };
            let delay_ms = rng.random_range(10..=200);
            let spec = NetemSpec {
                delay_ms,
                jitter_ms: rng.random_range(0..=delay_ms / 2),
                loss_pct: rng.random_range(1..=20),
                reorder_pct: rng.random_range(0..=30),
                rate_kbit: rng.random_range(500..=8000),
            };
            let mut applied = String::new();
            for n in &nodes {
                applied = cx.hosts.netem(*n, spec).await?;
            }
            Ok(Injected {
                description: format!("degraded network on nodes {nodes:?}: {applied}"),
                heal: Heal::ClearNetem(nodes),
            })
        }
        .boxed()
    }
}

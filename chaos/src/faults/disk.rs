//! A full disk: one node's data filesystem is filled so its writes fail
//! with ENOSPC. Healed by freeing the space and starting the node again if
//! it stopped (a node that cannot write stops rather than serve stale data).

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::rngs::StdRng;

use super::{Fault, FaultCx, Injected};
use crate::hosts::Heal;
use crate::target::Target;
use crate::ChaosError;

pub struct DiskFull;

impl Fault for DiskFull {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn inject<'a>(
        &'a self,
        cx: &'a FaultCx,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<Injected, ChaosError>> {
        async move {
            let (node, who) = Target::random(rng).resolve(cx, rng).await?;
            cx.hosts.fill_disk(node).await?;
            Ok(Injected {
                description: format!("disk full (ENOSPC) on {who}"),
                heal: Heal::FreeDisk(node),
            })
        }
        .boxed()
    }
}

//! kill -9 of one node (any node, a partition leader or the metadata
//! leader); healed by starting it again. As `power`, the nodes run with
//! `test_lose_unsynced_on_crash`, so the kill also loses every write the
//! node had not synced: a power loss.

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::rngs::StdRng;

use super::{Fault, FaultCx, Injected};
use crate::hosts::Heal;
use crate::target::Target;
use crate::ChaosError;

pub struct Kill {
    /// Reported as `power`: the harness started the nodes in the mode that
    /// drops unsynced writes on a crash.
    pub lose_unsynced: bool,
}

impl Fault for Kill {
    fn name(&self) -> &'static str {
        if self.lose_unsynced {
            "power"
        } else {
            "kill"
        }
    }

    fn inject<'a>(
        &'a self,
        cx: &'a FaultCx,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<Injected, ChaosError>> {
        async move {
            let (node, who) = Target::random(rng).resolve(cx, rng).await?;
            cx.hosts.kill(node).await?;
            let what = if self.lose_unsynced {
                "power loss (kill -9, unsynced writes lost) of"
            } else {
                "kill -9"
            };
            Ok(Injected {
                description: format!("{what} {who}"),
                heal: Heal::Restart(vec![node]),
            })
        }
        .boxed()
    }
}

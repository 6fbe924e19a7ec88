//! SIGSTOP of one node (a process that stops answering but keeps its
//! sockets, like a long GC pause or a frozen VM); healed by SIGCONT.

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::rngs::StdRng;

use super::{Fault, FaultCx, Injected};
use crate::hosts::Heal;
use crate::target::Target;
use crate::ChaosError;

pub struct Pause;

impl Fault for Pause {
    fn name(&self) -> &'static str {
        "pause"
    }

    fn inject<'a>(
        &'a self,
        cx: &'a FaultCx,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<Injected, ChaosError>> {
        async move {
            let (node, who) = Target::random(rng).resolve(cx, rng).await?;
            cx.hosts.pause(node).await?;
            Ok(Injected {
                description: format!("pause (SIGSTOP) {who}"),
                heal: Heal::Resume(vec![node]),
            })
        }
        .boxed()
    }
}

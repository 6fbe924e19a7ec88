//! Clock jump: one node is restarted with its monotonic and boot clocks
//! shifted forward or back by minutes to days (a Linux time namespace).
//!
//! The wall clock (CLOCK_REALTIME) cannot be moved for one node here: the
//! nodes share the host's kernel, and time namespaces offset only the
//! monotonic and boot clocks, fixed when the process starts. Record
//! timestamps come from producers, so the broker's wall clock matters only
//! for logs; its timers and leases use the monotonic clock, which this jumps.

use futures::future::BoxFuture;
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::Rng;

use super::{Fault, FaultCx, Injected};
use crate::hosts::Heal;
use crate::target::Target;
use crate::ChaosError;

pub struct ClockJump;

/// Seconds since the host booted (the boot clock a time namespace offsets).
fn host_uptime_s() -> i64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split('.').next().and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

impl Fault for ClockJump {
    fn name(&self) -> &'static str {
        "clock"
    }

    fn inject<'a>(
        &'a self,
        cx: &'a FaultCx,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<Injected, ChaosError>> {
        async move {
            let (node, who) = Target::random(rng).resolve(cx, rng).await?;
            let magnitude: i64 = rng.random_range(60..=30 * 86_400);
            let offset = if rng.random_bool(0.5) {
                magnitude
            } else {
                // The clocks cannot go below zero: back by at most the uptime.
                -magnitude.min(host_uptime_s().saturating_sub(120).max(0))
            };
            cx.hosts.kill(node).await?;
            cx.hosts.start(node, Some(offset)).await?;
            Ok(Injected {
                description: format!("clock jump of {offset:+} s (monotonic) on {who}"),
                heal: Heal::Nothing,
            })
        }
        .boxed()
    }
}

//! The faults. Each file is one fault: how it picks its victims and what
//! heals it. Adding one = a new file + a line in [`by_name`].

mod clock;
mod disk;
mod join;
mod kill;
mod membership;
mod metadata;
mod netem;
mod partition;
mod pause;
mod remove;

use std::sync::Arc;

use cairn_client::Client;
use futures::future::BoxFuture;
use rand::rngs::StdRng;

use crate::hosts::Heal;
use crate::hosts::Hosts;
use crate::ChaosError;

pub use clock::ClockJump;
pub use disk::DiskFull;
pub use join::Join;
pub use kill::Kill;
pub use membership::Membership;
pub use metadata::Metadata;
pub use netem::Netem;
pub use partition::Partition;
pub use pause::Pause;
pub use remove::Remove;

/// What a fault needs to know about the cluster.
#[derive(Clone)]
pub struct FaultCx {
    pub hosts: Arc<dyn Hosts>,
    /// A client for finding leaders.
    pub client: Client,
    /// The workload's topic and its partition count.
    pub topic: String,
    pub partitions: u32,
}

/// An injected fault: what was done, and what undoes it.
#[derive(Debug, Clone)]
pub struct Injected {
    pub description: String,
    pub heal: Heal,
}

/// One kind of fault.
pub trait Fault: Send + Sync {
    /// The name used on the command line (`--nemesis kill,pause`).
    fn name(&self) -> &'static str;
    /// Picks targets with `rng` and injects the fault.
    fn inject<'a>(
        &'a self,
        cx: &'a FaultCx,
        rng: &'a mut StdRng,
    ) -> BoxFuture<'a, Result<Injected, ChaosError>>;
}

/// Every fault's name, in the order `all` expands to.
pub const NAMES: &[&str] = &[
    "kill",
    "power",
    "pause",
    "partition",
    "netem",
    "disk",
    "clock",
];

/// The fault called `name`.
pub fn by_name(name: &str) -> Result<Box<dyn Fault>, ChaosError> {
    Ok(match name {
        "kill" => Box::new(Kill {
            lose_unsynced: false,
        }),
        "power" => Box::new(Kill {
            lose_unsynced: true,
        }),
        "pause" => Box::new(Pause),
        "partition" => Box::new(Partition { kind: None }),
        "isolate" => Box::new(Partition { kind: Some(0) }),
        "netem" => Box::new(Netem),
        "disk" => Box::new(DiskFull),
        "clock" => Box::new(ClockJump),
        "membership" => Box::new(Membership),
        "metadata" => Box::new(Metadata),
        "join" => Box::new(Join),
        "remove" => Box::new(Remove::default()),
        other => {
            return Err(ChaosError::UnknownFault(
                other.to_string(),
                format!(
                    "{},isolate,membership,metadata,join,remove",
                    NAMES.join(",")
                ),
            ))
        }
    })
}

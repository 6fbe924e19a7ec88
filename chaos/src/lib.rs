//! Fault injection for Cairn clusters (issue 3).
//!
//! ```text
//!   Nemesis (seeded schedule) ── picks ──> Fault::inject ──> Injected { heal }
//!        │   quiet ─ inject ─ hold ─ heal ─ quiet ...             │
//!        └──────────── reports FaultEvent to the runner           v
//!                                                    Hosts: kill / start / pause /
//!                                                    block / netem / fill disk
//! ```
//!
//! [`Hosts`] is the cluster's machines: the nodes run as separate hosts with
//! their own addresses ([`NetnsHosts`]: Linux network namespaces set up by
//! `cluster/netns`). A [`Fault`] chooses its targets (a node, the leader of a
//! partition, the metadata leader) and injects itself; what undoes it is a
//! [`Heal`], plain data, so that the nemesis can always heal everything at
//! the end. A new fault is one new file under `faults/` and one line in
//! [`faults::by_name`].
//!
//! [`wan`] is a userspace WAN (delay, jitter, bandwidth, cut) between
//! regions, as a TCP proxy: the kernel here has no `sch_netem`. The binary
//! `cairn-wan` runs one from the command line.

mod error;
pub mod faults;
mod hosts;
mod nemesis;
mod netns;
mod target;
pub mod wan;

pub use error::ChaosError;
pub use faults::{by_name, Fault, FaultCx, Injected};
pub use hosts::{Heal, Hosts, NetemSpec, NodeId};
pub use nemesis::{parse_faults, FaultEvent, Nemesis, NemesisConfig};
pub use netns::NetnsHosts;
pub use target::Target;
pub use wan::{WanControl, WanProxy, WanSettings};

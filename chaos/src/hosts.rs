//! [`Hosts`]: the machines a cluster runs on, and the primitive faults a
//! host can suffer. [`Heal`] names the primitive that undoes one.

use std::fmt;

use futures::future::BoxFuture;

use crate::ChaosError;

/// A Cairn node id; node `i` runs on host `i`.
pub type NodeId = u64;

/// Host-level operations of a cluster under test. Every operation is
/// idempotent: healing what is not broken is not an error.
pub trait Hosts: Send + Sync {
    /// The ids of the cluster's nodes, ascending: the first ones, and those
    /// that joined since, less those removed.
    fn nodes(&self) -> Vec<NodeId>;
    /// The nodes the cluster was started with (the metadata voters).
    fn voters(&self) -> Vec<NodeId>;
    /// Host slots that never ran a node: ids a new node can join under.
    fn spares(&self) -> Vec<NodeId>;
    /// Starts a new node `node` (a spare) that joins the running cluster
    /// through node `via` (not a metadata voter).
    fn join(&self, node: NodeId, via: NodeId) -> BoxFuture<'_, Result<(), ChaosError>>;
    /// kill -9 a node removed from the cluster and delete its data: it is
    /// no longer one of [`Hosts::nodes`] and its slot is never used again.
    fn retire(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>>;
    /// The client (gRPC) addresses of all nodes, for bootstrapping clients.
    fn bootstrap(&self) -> Vec<String>;
    /// Whether the node's process is running (paused counts as running).
    fn is_running(&self, node: NodeId) -> bool;

    /// kill -9 the node's process.
    fn kill(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>>;
    /// Starts the node's process if it is not running. `monotonic_offset_s`
    /// starts it with its monotonic and boot clocks shifted by that many
    /// seconds, where the host can do so.
    fn start(
        &self,
        node: NodeId,
        monotonic_offset_s: Option<i64>,
    ) -> BoxFuture<'_, Result<(), ChaosError>>;
    /// SIGSTOP / SIGCONT.
    fn pause(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>>;
    fn resume(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>>;
    /// Drops every packet `node` receives from the hosts of `from`.
    fn block(&self, node: NodeId, from: Vec<NodeId>) -> BoxFuture<'_, Result<(), ChaosError>>;
    /// Removes every [`Hosts::block`] rule on every host.
    fn heal_network(&self) -> BoxFuture<'_, Result<(), ChaosError>>;
    /// Degrades the node's network: delay with jitter, loss and reordering
    /// (`tc netem`) where the kernel has netem, else the closest it can do.
    /// Returns what was applied.
    fn netem(&self, node: NodeId, spec: NetemSpec) -> BoxFuture<'_, Result<String, ChaosError>>;
    fn clear_netem(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>>;
    /// Fills the node's data filesystem so that writes fail with ENOSPC.
    fn fill_disk(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>>;
    fn free_disk(&self, node: NodeId) -> BoxFuture<'_, Result<(), ChaosError>>;
}

/// A degraded network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetemSpec {
    pub delay_ms: u32,
    pub jitter_ms: u32,
    pub loss_pct: u32,
    pub reorder_pct: u32,
    /// Bandwidth of the fallback without netem (queueing delay instead).
    pub rate_kbit: u32,
}

impl NetemSpec {
    /// The arguments after `tc qdisc ... netem`.
    pub fn netem_line(&self) -> String {
        format!(
            "delay {}ms {}ms loss {}% reorder {}% 50%",
            self.delay_ms, self.jitter_ms, self.loss_pct, self.reorder_pct
        )
    }
}

/// What undoes an injected fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heal {
    /// Nothing to undo (e.g. a fault that heals itself).
    Nothing,
    /// Start these nodes again (after a kill).
    Restart(Vec<NodeId>),
    /// SIGCONT these nodes.
    Resume(Vec<NodeId>),
    /// Remove all packet filters.
    Network,
    /// Remove the netem qdisc of these nodes.
    ClearNetem(Vec<NodeId>),
    /// Free the filled disk, then start the node again if ENOSPC stopped it.
    FreeDisk(NodeId),
}

impl Heal {
    /// Carries the heal out.
    pub async fn apply(&self, hosts: &dyn Hosts) -> Result<(), ChaosError> {
        match self {
            Heal::Nothing => Ok(()),
            Heal::Restart(nodes) => {
                for n in nodes {
                    hosts.start(*n, None).await?;
                }
                Ok(())
            }
            Heal::Resume(nodes) => {
                for n in nodes {
                    hosts.resume(*n).await?;
                }
                Ok(())
            }
            Heal::Network => hosts.heal_network().await,
            Heal::ClearNetem(nodes) => {
                for n in nodes {
                    hosts.clear_netem(*n).await?;
                }
                Ok(())
            }
            Heal::FreeDisk(n) => {
                hosts.free_disk(*n).await?;
                hosts.start(*n, None).await
            }
        }
    }

    /// Undoes every kind of fault on every node: the final heal of a run.
    pub async fn everything(hosts: &dyn Hosts) -> Result<(), ChaosError> {
        let nodes = hosts.nodes();
        hosts.heal_network().await?;
        for n in &nodes {
            hosts.clear_netem(*n).await?;
            hosts.free_disk(*n).await?;
            hosts.resume(*n).await?;
            hosts.start(*n, None).await?;
        }
        Ok(())
    }
}

impl fmt::Display for Heal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Heal::Nothing => write!(f, "nothing"),
            Heal::Restart(n) => write!(f, "restart {n:?}"),
            Heal::Resume(n) => write!(f, "resume {n:?}"),
            Heal::Network => write!(f, "heal network"),
            Heal::ClearNetem(n) => write!(f, "clear netem {n:?}"),
            Heal::FreeDisk(n) => write!(f, "free disk of {n}"),
        }
    }
}

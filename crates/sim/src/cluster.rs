//! The simulated cluster: real nodes (`cairn_broker::start_with`) in one
//! process, on the simulated network and disks.
//!
//! Nodes 1..=3 are the metadata group's voters; any further node joins
//! through node 1, as `cairn server --join` does, and holds replicas only
//! once partitions are reassigned to it.

use std::path::Path;
use std::sync::Arc;

use cairn_broker::Broker;
use cairn_broker::Running;
use cairn_broker::Seams;
use cairn_broker::ServerConfig;

use crate::disk::SimDisk;
use crate::net::SimNet;

pub type NodeId = u64;

/// The metadata group's voters.
pub const VOTERS: u64 = 3;

pub fn rpc_addr(id: NodeId) -> String {
    format!("n{id}:7000")
}

pub struct SimNode {
    pub id: NodeId,
    pub disk: SimDisk,
    running: Option<Running>,
    /// The broker of the running incarnation.
    pub broker: Option<Broker>,
    /// Counts starts, so invariants keep per-incarnation state apart.
    pub incarnation: u32,
    joining: Option<tokio::task::JoinHandle<Result<(), cairn_broker::ServerError>>>,
}

pub struct Cluster {
    pub net: SimNet,
    pub nodes: Vec<SimNode>,
    plant: Plant,
    seed: u64,
}

/// A bug planted on purpose, for the simulator to find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Plant {
    #[default]
    None,
    /// The store reports writes durable without any fsync.
    AckBeforeFsync,
    /// Reliability finding 5 undone: a restarted leader resumes its old term.
    LeaderRestore,
}

impl Cluster {
    pub fn new(root: &Path, nodes: u64, net: SimNet, plant: Plant, seed: u64) -> Cluster {
        Cluster {
            net,
            nodes: (1..=nodes)
                .map(|id| SimNode {
                    id,
                    disk: SimDisk::new(root.join(format!("node-{id}"))),
                    running: None,
                    broker: None,
                    incarnation: 0,
                    joining: None,
                })
                .collect(),
            plant,
            seed,
        }
    }

    fn config(&self, id: NodeId, data_dir: &Path) -> ServerConfig {
        let voters = (1..=VOTERS)
            .map(|v| format!("{v}={}", rpc_addr(v)))
            .collect::<Vec<_>>()
            .join(",");
        ServerConfig {
            node_id: id,
            data_dir: data_dir.to_path_buf(),
            rpc_addr: rpc_addr(id),
            advertised_rpc_addr: Some(rpc_addr(id)),
            voters: (id <= VOTERS).then_some(voters),
            join: (id > VOTERS).then(|| rpc_addr(1)),
            test_replica_reads: true,
            // Frequent snapshots, so snapshot installs happen in short runs.
            metadata_snapshot_entries: 64,
            retention_check_interval_ms: 1_000,
            compaction_interval_ms: 2_000,
            ..ServerConfig::default()
        }
    }

    pub fn node(&self, id: NodeId) -> &SimNode {
        &self.nodes[(id - 1) as usize]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut SimNode {
        &mut self.nodes[(id - 1) as usize]
    }

    pub fn is_up(&self, id: NodeId) -> bool {
        self.node(id).running.is_some()
    }

    pub fn up_nodes(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|n| n.running.is_some())
            .map(|n| n.id)
            .collect()
    }

    pub fn broker(&self, id: NodeId) -> Option<Broker> {
        self.node(id).broker.clone()
    }

    /// Starts node `id` on its disk's current incarnation.
    pub async fn start(&mut self, id: NodeId) -> anyhow::Result<()> {
        let plant = self.plant;
        let disk_seed = self.seed ^ (id << 32) ^ u64::from(self.node(id).incarnation);
        let data_dir = self.node(id).disk.data_dir();
        let config = self.config(id, &data_dir);
        let store = self
            .node_mut(id)
            .disk
            .store_options(plant == Plant::AckBeforeFsync, disk_seed);
        let endpoint = self.net.endpoint(id, self.node(id).incarnation + 1);
        let seams = Seams {
            network: Some(Arc::new(endpoint.clone())),
            message_faults: Some(Arc::new(endpoint)),
            store: Some(store),
            plants: cairn_broker::Plants {
                leader_restore: plant == Plant::LeaderRestore,
            },
        };
        let running = cairn_broker::start_with(config, seams)
            .await
            .map_err(|e| anyhow::anyhow!("node {id} failed to start: {e}"))?;
        let broker = running.broker();
        // Admission retries on its own until the cluster answers.
        let joining = (id > VOTERS).then(|| running.join_in_background());
        let node = self.node_mut(id);
        node.joining = joining;
        node.running = Some(running);
        node.broker = Some(broker);
        node.incarnation += 1;
        Ok(())
    }

    /// A power loss of node `id`: it stops at once and comes back (on
    /// [`Cluster::start`]) with only what it had fsynced.
    pub async fn crash(&mut self, id: NodeId) -> anyhow::Result<()> {
        self.net.down(id);
        let node = self.node_mut(id);
        let Some(running) = node.running.take() else {
            return Ok(());
        };
        node.broker = None;
        if let Some(j) = node.joining.take() {
            j.abort();
        }
        node.disk.crash(&running.store())?;
        running.shutdown().await;
        node.disk.remove_old();
        Ok(())
    }

    /// Stops every node and removes their disks.
    pub async fn stop_all(&mut self) {
        for n in &mut self.nodes {
            self.net.down(n.id);
            n.broker = None;
            if let Some(j) = n.joining.take() {
                j.abort();
            }
            if let Some(r) = n.running.take() {
                r.shutdown().await;
            }
        }
        for n in &self.nodes {
            n.disk.remove_all();
        }
    }
}

//! `cairn-sim`: a whole Cairn cluster in one process, under seeded faults.
//!
//! ```text
//!   cairn-sim run --seeds 1..1000     cairn-sim replay 42
//!          │                                 │
//!          └──────────► run::run_seed(seed) ◄┘
//!                          │
//!      ┌───────────────────┼────────────────────────────┐
//!      │ tokio current-thread runtime, clock paused      │
//!      │  cluster::Cluster ── real nodes (cairn_broker)  │
//!      │     ├─ net::SimNet   (PeerNetwork + MessageFaults)
//!      │     └─ disk::SimDisk (RocksDB on /dev/shm, crash = only fsynced bytes)
//!      │  clients (produce/fetch through the Broker façade) ─► history
//!      │  monitor (one leader per term, high watermarks)  │
//!      └─────────────────────────────────────────────────┘
//!                          │
//!            cairn_jepsen::check(history) + invariants ─► Report
//! ```
//!
//! See `docs/reliability.md` ("Deterministic simulation") for what it runs,
//! how deterministic a replay is, and what it found.

pub mod cluster;
pub mod disk;
pub mod entropy;
pub mod net;
pub mod run;

pub use run::run_seed;
pub use run::Options;
pub use run::Report;

//! The cluster's metadata: what the metadata Raft group replicates.
//!
//! Pure logic, no I/O: [`MetadataState::apply`] takes a [`MetaCommand`] and
//! returns a [`MetaResponse`], deterministically, so every node that applies
//! the same log reaches the same state. The Raft wiring lives in the server.
//!
//! ```text
//!   MetadataState
//!   ├── cluster_id            set once, by the node that bootstraps the group
//!   ├── nodes                 id -> addresses, rack
//!   ├── draining, retired     nodes being decommissioned; ids removed for good
//!   ├── topics                name -> partitions -> (raft group, replicas)
//!   ├── acls                  Kafka ACL bindings (enforced by cairn-broker's acl.rs)
//!   ├── users                 name -> SCRAM mechanism -> salted credential
//!   ├── roles                 name -> ACL bindings, member principals
//!   ├── group_offsets         consumer group -> topic -> partition -> offset
//!   ├── groups                consumer group -> generation, members, assignments
//!   ├── mirror_links          name -> source cluster, what it copies, paused
//!   └── mirror_topics         topic -> the link it mirrors (read-only until promoted)
//! ```

mod assignment;
pub mod broker_configs;
mod command;
mod config;
mod groups;
mod mirror;
mod state;
pub mod topic_configs;

pub use assignment::assign_replicas;
pub use assignment::AssignError;
pub use broker_configs::dynamic_broker_config;
pub use broker_configs::validate_broker_config;
pub use broker_configs::DYNAMIC_BROKER_CONFIGS;
pub use command::MetaCommand;
pub use command::MetaError;
pub use command::MetaResponse;
pub use command::PartitionMove;
pub use config::alter_topic_configs;
pub use config::validate_topic_configs;
pub use config::validate_topic_name;
pub use config::ConfigError;
pub use config::TopicConfig;
pub use groups::check_commit;
pub use groups::GroupCommit;
pub use groups::GroupError;
pub use groups::GroupMember;
pub use groups::GroupMeta;
pub use groups::GroupPhase;
pub use mirror::glob_match;
pub use mirror::MirrorLink;
pub use mirror::MirroredSecurity;
pub use mirror::SourceSecurity;
pub use state::producer_id_base;
pub use state::AclEntry;
pub use state::CommittedOffset;
pub use state::GroupId;
pub use state::MetadataState;
pub use state::NodeId;
pub use state::NodeInfo;
pub use state::PartitionAssignment;
pub use state::Role;
pub use state::ScramCredential;
pub use state::Topic;
pub use state::METADATA_GROUP;
pub use topic_configs::topic_config_def;
pub use topic_configs::TOPIC_CONFIGS;

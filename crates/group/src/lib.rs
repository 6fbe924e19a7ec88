//! Partition assignment for consumer groups: which member of a group reads
//! which partitions. Pure logic, no I/O; the group coordinator that collects
//! subscriptions and hands out the result lives elsewhere.
//!
//! ```text
//!   MemberSubscription { member_id, topics, owned, generation }  ─┐
//!   partitions_per_topic: topic -> partition count                ─┤
//!                                                                  ▼
//!   Assignor::assign ── "range" | "roundrobin" | "cooperative-sticky"
//!                                                                  │
//!                         Assignment: member -> sorted partitions ◄┘
//!                                                                  │
//!   revocations(members, &target): what each member must give up  ◄┘
//!   first (cooperative rebalancing)
//! ```
//!
//! The assignors use Kafka's protocol names and, for `range` and
//! `roundrobin`, Kafka's results. All are deterministic: the same input gives
//! the same assignment, whatever the order of the members.
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use cairn_group::assignor_by_name;
//! use cairn_group::revocations;
//! use cairn_group::MemberSubscription;
//! use cairn_group::TopicPartition;
//!
//! let topics = BTreeMap::from([("orders".to_string(), 4)]);
//! let sticky = assignor_by_name("cooperative-sticky").expect("a known assignor");
//!
//! // One member owns everything; a second one joins.
//! let all: Vec<_> = (0..4).map(|p| TopicPartition::new("orders", p)).collect();
//! let members = [
//!     MemberSubscription::new("consumer-a", ["orders"]).owning(all, 1),
//!     MemberSubscription::new("consumer-b", ["orders"]),
//! ];
//! let target = sticky.assign(&members, &topics);
//! assert_eq!(target["consumer-a"].len(), 2);
//! assert_eq!(target["consumer-b"].len(), 2);
//!
//! // consumer-a revokes the two partitions that move before b may take them.
//! let revoked = revocations(&members, &target);
//! assert_eq!(revoked["consumer-a"], target["consumer-b"]);
//! ```

mod assignor;
mod cooperative_sticky;
mod member;
pub mod modern;
mod protocol;
mod range;
mod revocations;
mod round_robin;
mod subscriptions;
mod topic_partition;

#[cfg(test)]
mod testing;

pub use assignor::assignor_by_name;
pub use assignor::Assignment;
pub use assignor::Assignor;
pub use cooperative_sticky::CooperativeStickyAssignor;
pub use member::MemberSubscription;
pub use member::NO_GENERATION;
pub use protocol::decode_assignment;
pub use protocol::encode_assignment;
pub use protocol::ProtocolError;
pub use protocol::Subscription;
pub use protocol::CONSUMER_PROTOCOL_TYPE;
pub use range::RangeAssignor;
pub use revocations::revocations;
pub use round_robin::RoundRobinAssignor;
pub use topic_partition::TopicPartition;

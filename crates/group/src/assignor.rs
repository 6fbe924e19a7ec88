use std::collections::BTreeMap;

use crate::cooperative_sticky::CooperativeStickyAssignor;
use crate::member::MemberSubscription;
use crate::range::RangeAssignor;
use crate::round_robin::RoundRobinAssignor;
use crate::topic_partition::TopicPartition;

/// Member id -> the partitions it is assigned, sorted. Every member of the
/// input appears, with an empty list if it gets nothing.
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// A partition assignment strategy, named by its Kafka protocol name.
///
/// Implementations are pure and deterministic: the same members and topics
/// give the same assignment. Member ids are expected to be unique; if one
/// repeats, its first entry is used. Partitions of topics nobody subscribes
/// to, and topics missing from `partitions_per_topic`, are not assigned.
pub trait Assignor: Send + Sync {
    /// Kafka's protocol name: `range`, `roundrobin`, `cooperative-sticky`.
    fn name(&self) -> &'static str;

    /// Assigns the partitions of the subscribed topics to `members`.
    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, u32>,
    ) -> Assignment;
}

/// The assignor with Kafka protocol name `name`, if Cairn has it.
pub fn assignor_by_name(name: &str) -> Option<Box<dyn Assignor>> {
    let assignor: Box<dyn Assignor> = match name {
        RangeAssignor::NAME => Box::new(RangeAssignor),
        RoundRobinAssignor::NAME => Box::new(RoundRobinAssignor),
        CooperativeStickyAssignor::NAME => Box::new(CooperativeStickyAssignor),
        _ => return None,
    };
    Some(assignor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_assignor_by_its_name() {
        for name in ["range", "roundrobin", "cooperative-sticky"] {
            let assignor = assignor_by_name(name);
            assert_eq!(assignor.map(|a| a.name()), Some(name));
        }
        assert!(assignor_by_name("sticky").is_none());
        assert!(assignor_by_name("").is_none());
    }
}

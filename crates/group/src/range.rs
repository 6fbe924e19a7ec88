use std::collections::BTreeMap;

use crate::assignor::Assignment;
use crate::assignor::Assignor;
use crate::member::MemberSubscription;
use crate::subscriptions::Subscriptions;
use crate::topic_partition::TopicPartition;

/// Kafka's `RangeAssignor`.
///
/// Topic by topic, the members subscribed to it (sorted by member id) get
/// contiguous ranges of its partitions; with `n` partitions and `m` members
/// the first `n % m` members get one more than the others. Balanced per
/// topic, but the extras pile up on the same first members across topics.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl RangeAssignor {
    pub const NAME: &'static str = "range";
}

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, u32>,
    ) -> Assignment {
        let group = Subscriptions::new(members, partitions_per_topic);
        let mut per_member = vec![Vec::new(); group.members.len()];
        for (topic, subscribed) in &group.topics {
            let member_count = subscribed.subscribers.len() as u32;
            let per = subscribed.partitions / member_count;
            let extra = subscribed.partitions % member_count;
            for (position, &member) in subscribed.subscribers.iter().enumerate() {
                let position = position as u32;
                let start = position * per + position.min(extra);
                let len = per + u32::from(position < extra);
                per_member[member]
                    .extend((start..start + len).map(|p| TopicPartition::new(*topic, p)));
            }
        }
        group.into_assignment(per_member)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::parts;
    use crate::testing::topics;

    #[test]
    fn splits_each_topic_into_ranges_as_kafka_documents() {
        // Kafka's RangeAssignor javadoc: C0, C1 both subscribed to t0, t1 (3 partitions each).
        let members = [
            MemberSubscription::new("C1", ["t0", "t1"]),
            MemberSubscription::new("C0", ["t0", "t1"]),
        ];
        let assignment = RangeAssignor.assign(&members, &topics(&[("t0", 3), ("t1", 3)]));
        assert_eq!(
            assignment["C0"],
            parts(&[("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1)])
        );
        assert_eq!(assignment["C1"], parts(&[("t0", 2), ("t1", 2)]));
    }

    #[test]
    fn only_subscribers_share_a_topic() {
        let members = [
            MemberSubscription::new("a", ["t0"]),
            MemberSubscription::new("b", ["t0", "t1"]),
            MemberSubscription::new("c", Vec::<String>::new()),
        ];
        let assignment =
            RangeAssignor.assign(&members, &topics(&[("t0", 5), ("t1", 2), ("t2", 4)]));
        assert_eq!(assignment["a"], parts(&[("t0", 0), ("t0", 1), ("t0", 2)]));
        assert_eq!(
            assignment["b"],
            parts(&[("t0", 3), ("t0", 4), ("t1", 0), ("t1", 1)])
        );
        assert_eq!(assignment["c"], parts(&[]));
    }

    #[test]
    fn more_members_than_partitions_leaves_the_last_members_empty() {
        let members = [
            MemberSubscription::new("a", ["t"]),
            MemberSubscription::new("b", ["t"]),
            MemberSubscription::new("c", ["t"]),
        ];
        let assignment = RangeAssignor.assign(&members, &topics(&[("t", 2)]));
        assert_eq!(assignment["a"], parts(&[("t", 0)]));
        assert_eq!(assignment["b"], parts(&[("t", 1)]));
        assert_eq!(assignment["c"], parts(&[]));
    }
}

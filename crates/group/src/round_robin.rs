use std::collections::BTreeMap;

use crate::assignor::Assignment;
use crate::assignor::Assignor;
use crate::member::MemberSubscription;
use crate::subscriptions::Subscriptions;

/// Kafka's `RoundRobinAssignor`.
///
/// All partitions of the subscribed topics, sorted by topic then partition,
/// are dealt in turn over the members sorted by id; the turn skips members
/// not subscribed to the partition's topic. With identical subscriptions the
/// counts differ by at most one.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl RoundRobinAssignor {
    pub const NAME: &'static str = "roundrobin";
}

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, u32>,
    ) -> Assignment {
        let group = Subscriptions::new(members, partitions_per_topic);
        let member_count = group.members.len();
        let mut per_member = vec![Vec::new(); member_count];
        let mut next = 0;
        for tp in group.all_partitions() {
            // Every topic in `group.topics` has a subscriber, so this stops
            // within one lap.
            while !group.is_subscribed(next, &tp.topic) {
                next = (next + 1) % member_count;
            }
            per_member[next].push(tp);
            next = (next + 1) % member_count;
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
    fn deals_partitions_in_turn_as_kafka_documents() {
        // Kafka's RoundRobinAssignor javadoc: C0, C1 both subscribed to t0, t1 (3 partitions each).
        let members = [
            MemberSubscription::new("C0", ["t0", "t1"]),
            MemberSubscription::new("C1", ["t0", "t1"]),
        ];
        let assignment = RoundRobinAssignor.assign(&members, &topics(&[("t0", 3), ("t1", 3)]));
        assert_eq!(assignment["C0"], parts(&[("t0", 0), ("t0", 2), ("t1", 1)]));
        assert_eq!(assignment["C1"], parts(&[("t0", 1), ("t1", 0), ("t1", 2)]));
    }

    #[test]
    fn skips_members_not_subscribed_as_kafka_documents() {
        // Kafka's javadoc: C0 [t0], C1 [t0, t1], C2 [t0, t1, t2]; t0 has 1
        // partition, t1 2, t2 3.
        let members = [
            MemberSubscription::new("C0", ["t0"]),
            MemberSubscription::new("C1", ["t0", "t1"]),
            MemberSubscription::new("C2", ["t0", "t1", "t2"]),
        ];
        let assignment =
            RoundRobinAssignor.assign(&members, &topics(&[("t0", 1), ("t1", 2), ("t2", 3)]));
        assert_eq!(assignment["C0"], parts(&[("t0", 0)]));
        assert_eq!(assignment["C1"], parts(&[("t1", 0)]));
        assert_eq!(
            assignment["C2"],
            parts(&[("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2)])
        );
    }

    #[test]
    fn no_members_and_no_topics_give_empty_assignments() {
        assert!(RoundRobinAssignor
            .assign(&[], &topics(&[("t", 3)]))
            .is_empty());
        let members = [MemberSubscription::new("a", ["missing"])];
        let assignment = RoundRobinAssignor.assign(&members, &topics(&[("t", 3)]));
        assert_eq!(assignment["a"], parts(&[]));
    }
}

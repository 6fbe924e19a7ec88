//! Properties all three assignors share, over random groups.

use cairn_group::assignor_by_name;
use cairn_group::Assignor;
use proptest::prelude::*;

use crate::invariants::check_complete_and_exclusive;
use crate::invariants::check_locally_balanced;
use crate::invariants::spread;
use crate::strategies::any_group;
use crate::strategies::identical_group;
use crate::strategies::Group;

const NAMES: [&str; 3] = ["range", "roundrobin", "cooperative-sticky"];

fn assignor(name: &str) -> Box<dyn Assignor> {
    assignor_by_name(name).expect("a known assignor")
}

/// The group and the same group with its members in another order.
fn group_and_shuffled() -> impl Strategy<Value = (Group, Group)> {
    any_group().prop_flat_map(|group| {
        let topics = group.topics.clone();
        let shuffled = Just(group.members.clone())
            .prop_shuffle()
            .prop_map(move |members| Group {
                members,
                topics: topics.clone(),
            });
        (Just(group), shuffled)
    })
}

proptest! {
    #[test]
    fn every_subscribed_partition_is_assigned_once_to_a_subscriber(group in any_group()) {
        for name in NAMES {
            let assignment = assignor(name).assign(&group.members, &group.topics);
            check_complete_and_exclusive(&group, &assignment);
        }
    }

    #[test]
    fn the_same_group_in_any_order_gets_the_same_assignment(
        (group, shuffled) in group_and_shuffled()
    ) {
        for name in NAMES {
            let assignor = assignor(name);
            let first = assignor.assign(&group.members, &group.topics);
            prop_assert_eq!(&first, &assignor.assign(&group.members, &group.topics), "{}", name);
            prop_assert_eq!(&first, &assignor.assign(&shuffled.members, &shuffled.topics), "{}", name);
        }
    }

    #[test]
    fn identical_subscriptions_give_counts_within_one(group in identical_group()) {
        for name in ["roundrobin", "cooperative-sticky"] {
            let assignment = assignor(name).assign(&group.members, &group.topics);
            prop_assert!(spread(&assignment) <= 1, "{}: {:?}", name, assignment);
        }
    }

    /// Range balances each topic on its own; across topics the extra
    /// partitions land on the same first members (Kafka's behaviour).
    #[test]
    fn range_gives_counts_within_one_per_topic(group in identical_group()) {
        let assignment = assignor("range").assign(&group.members, &group.topics);
        for topic in group.topics.keys() {
            let counts = assignment
                .values()
                .map(|tps| tps.iter().filter(|tp| &tp.topic == topic).count());
            let spread = counts.clone().max().unwrap_or(0) - counts.min().unwrap_or(0);
            prop_assert!(spread <= 1, "{}: {:?}", topic, assignment);
        }
    }

    #[test]
    fn sticky_is_locally_balanced_for_any_subscriptions(group in any_group()) {
        let assignment = assignor("cooperative-sticky").assign(&group.members, &group.topics);
        check_locally_balanced(&group, &assignment);
    }
}

//! Checkers for the properties of an assignment, one per function.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use cairn_group::Assignment;
use cairn_group::TopicPartition;

use crate::strategies::Group;

/// Every member of the group appears; every partition of a subscribed topic
/// is assigned exactly once, to a member subscribed to its topic; nothing
/// else is assigned; each member's list is sorted.
pub fn check_complete_and_exclusive(group: &Group, assignment: &Assignment) {
    let ids: BTreeSet<&str> = group.members.iter().map(|m| m.member_id.as_str()).collect();
    let keys: BTreeSet<&str> = assignment.keys().map(String::as_str).collect();
    assert_eq!(keys, ids, "every member appears, and only members");

    let mut owner: BTreeMap<&TopicPartition, &str> = BTreeMap::new();
    for (member_id, partitions) in assignment {
        assert!(partitions.is_sorted(), "{member_id}'s list is sorted");
        let member = group
            .members
            .iter()
            .find(|m| &m.member_id == member_id)
            .expect("the member is in the group");
        for tp in partitions {
            assert!(
                member.topics.contains(&tp.topic),
                "{tp} went to {member_id}, not subscribed to its topic"
            );
            if let Some(other) = owner.insert(tp, member_id) {
                panic!("{tp} assigned to both {other} and {member_id}");
            }
        }
    }
    let expected = group.subscribed_partitions();
    let assigned: Vec<&TopicPartition> = owner.keys().copied().collect();
    assert_eq!(
        assigned,
        expected.iter().collect::<Vec<_>>(),
        "each subscribed partition is assigned"
    );
}

/// The largest count minus the smallest.
pub fn spread(assignment: &Assignment) -> usize {
    let counts = assignment.values().map(Vec::len);
    counts.clone().max().unwrap_or(0) - counts.min().unwrap_or(0)
}

/// No single move narrows a gap: for every partition held by `a` and every
/// member `b` subscribed to its topic, `count(b) >= count(a) - 1`.
pub fn check_locally_balanced(group: &Group, assignment: &Assignment) {
    for (a, partitions) in assignment {
        for tp in partitions {
            for b in group
                .members
                .iter()
                .filter(|m| m.topics.contains(&tp.topic))
            {
                let count_b = assignment[&b.member_id].len();
                assert!(
                    count_b + 1 >= partitions.len(),
                    "{tp} on {a} ({} partitions) could go to {} ({count_b})",
                    partitions.len(),
                    b.member_id
                );
            }
        }
    }
}

/// The fewest owned partitions that must change hands for members owning
/// `counts` partitions to reach a balanced share of `total`: each ends with
/// `total / m` or one more, and at most `total % m` get one more.
pub fn forced_moves(counts: &[usize], total: usize) -> usize {
    if counts.is_empty() {
        return 0;
    }
    let floor = total / counts.len();
    let extra = total % counts.len();
    let above_ceiling: usize = counts.iter().map(|&c| c.saturating_sub(floor + 1)).sum();
    let at_ceiling = counts.iter().filter(|&&c| c > floor).count();
    above_ceiling + at_ceiling.saturating_sub(extra)
}

//! Stickiness of `cooperative-sticky`: membership changes move only the
//! partitions that balance forces to move, and `revocations` names exactly
//! the partitions that change owner.

use std::collections::BTreeMap;

use cairn_group::revocations;
use cairn_group::Assignment;
use cairn_group::Assignor;
use cairn_group::CooperativeStickyAssignor;
use cairn_group::MemberSubscription;
use cairn_group::TopicPartition;
use proptest::prelude::*;

use crate::invariants::check_complete_and_exclusive;
use crate::invariants::forced_moves;
use crate::strategies::any_group;
use crate::strategies::identical_group;
use crate::strategies::Group;

fn owners(assignment: &Assignment) -> BTreeMap<&TopicPartition, &str> {
    assignment
        .iter()
        .flat_map(|(member, tps)| tps.iter().map(move |tp| (tp, member.as_str())))
        .collect()
}

/// The next generation of `group`: every member owns what `assignment` gave it.
fn members_owning(
    group: &Group,
    assignment: &Assignment,
    generation: i32,
) -> Vec<MemberSubscription> {
    group
        .members
        .iter()
        .map(|m| {
            m.clone()
                .owning(assignment[&m.member_id].clone(), generation)
        })
        .collect()
}

/// Checks the assignment `after` of `next`, whose members owned what they own
/// in `next.members`: only forced moves happened, members at or under the
/// lower quota kept everything, and `revocations` lists exactly the
/// partitions that changed owner. Returns how many owned partitions moved.
fn check_only_forced_moves(next: &Group, after: &Assignment) -> Result<usize, TestCaseError> {
    check_complete_and_exclusive(next, after);
    let total = next.subscribed_partitions().len();
    let counts: Vec<usize> = next.members.iter().map(|m| m.owned.len()).collect();
    let floor = total.checked_div(counts.len()).unwrap_or(0);
    let new_owner = owners(after);
    let mut moved = 0;
    let expected_revocations: BTreeMap<String, Vec<TopicPartition>> = next
        .members
        .iter()
        .map(|m| {
            let gone: Vec<TopicPartition> = m
                .owned
                .iter()
                .filter(|tp| new_owner.get(tp).is_some_and(|o| *o != m.member_id))
                .cloned()
                .collect();
            (m.member_id.clone(), gone)
        })
        .collect();
    for (member, gone) in &expected_revocations {
        let owned = next
            .members
            .iter()
            .find(|m| &m.member_id == member)
            .map_or(0, |m| m.owned.len());
        prop_assert!(
            owned - gone.len() >= owned.min(floor),
            "{} owned {} and kept only {} (quota {})",
            member,
            owned,
            owned - gone.len(),
            floor
        );
        moved += gone.len();
    }
    prop_assert!(
        moved <= forced_moves(&counts, total),
        "{} owned partitions moved, balance forces {}",
        moved,
        forced_moves(&counts, total)
    );
    prop_assert_eq!(revocations(&next.members, after), expected_revocations);
    Ok(moved)
}

proptest! {
    /// From any conflict-free ownership, the owned partitions that move are
    /// at most the excess over the members' quotas.
    #[test]
    fn from_any_ownership_only_the_excess_moves(group in identical_group()) {
        let after = CooperativeStickyAssignor.assign(&group.members, &group.topics);
        check_only_forced_moves(&group, &after)?;
    }

    /// A member leaves: only its partitions move.
    #[test]
    fn a_member_leaving_moves_only_its_partitions(group in identical_group(), leaver in any::<prop::sample::Index>()) {
        prop_assume!(group.members.len() >= 2);
        let before = CooperativeStickyAssignor.assign(&group.members, &group.topics);
        let leaver = leaver.index(group.members.len());
        let mut next = Group { members: members_owning(&group, &before, 2), topics: group.topics.clone() };
        let left = next.members.remove(leaver);

        let after = CooperativeStickyAssignor.assign(&next.members, &next.topics);
        let moved = check_only_forced_moves(&next, &after)?;
        prop_assert_eq!(moved, 0, "balance after a departure needs no other moves");
        for tp in &left.owned {
            prop_assert!(owners(&after).contains_key(tp), "{} of the leaver is reassigned", tp);
        }
    }

    /// A member joins: it takes only the excess of the others.
    #[test]
    fn a_member_joining_takes_only_the_excess(group in identical_group()) {
        let before = CooperativeStickyAssignor.assign(&group.members, &group.topics);
        let mut next = Group { members: members_owning(&group, &before, 2), topics: group.topics.clone() };
        let topics = group.members[0].topics.clone();
        next.members.push(MemberSubscription::new("joiner", topics));

        let after = CooperativeStickyAssignor.assign(&next.members, &next.topics);
        let moved = check_only_forced_moves(&next, &after)?;
        prop_assert_eq!(moved, after["joiner"].len(), "every move goes to the joiner");
    }

    /// With any subscriptions, owning what the assignor gave leads to the
    /// same assignment: a rebalance without a change moves nothing.
    #[test]
    fn reassigning_an_unchanged_group_moves_nothing(group in any_group()) {
        let first = CooperativeStickyAssignor.assign(&group.members, &group.topics);
        let members = members_owning(&group, &first, 7);
        let second = CooperativeStickyAssignor.assign(&members, &group.topics);
        prop_assert_eq!(&second, &first);
        prop_assert!(revocations(&members, &second).values().all(Vec::is_empty));
    }
}

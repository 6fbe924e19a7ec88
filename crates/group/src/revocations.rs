use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::assignor::Assignment;
use crate::member::MemberSubscription;
use crate::topic_partition::TopicPartition;

/// For cooperative rebalancing: the partitions each member must revoke before
/// `target` can be handed out, namely those it owns that `target` gives to
/// another member.
///
/// Owned partitions that `target` gives to nobody (a deleted topic, one the
/// member left) are not listed: no other member waits for them, and the
/// member drops them when it receives its new assignment. Every member of
/// `members` appears, with a sorted list; a repeated member id uses its first
/// entry.
pub fn revocations(
    members: &[MemberSubscription],
    target: &Assignment,
) -> BTreeMap<String, Vec<TopicPartition>> {
    let target_owner: BTreeMap<&TopicPartition, &str> = target
        .iter()
        .flat_map(|(member, partitions)| partitions.iter().map(move |tp| (tp, member.as_str())))
        .collect();
    let mut revoked = BTreeMap::new();
    for member in members {
        if revoked.contains_key(&member.member_id) {
            continue;
        }
        let owned: BTreeSet<&TopicPartition> = member.owned.iter().collect();
        let to_revoke = owned
            .into_iter()
            .filter(|tp| {
                target_owner
                    .get(tp)
                    .is_some_and(|owner| *owner != member.member_id)
            })
            .cloned()
            .collect();
        revoked.insert(member.member_id.clone(), to_revoke);
    }
    revoked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::parts;

    #[test]
    fn lists_owned_partitions_that_move_to_another_member() {
        let members = [
            MemberSubscription::new("a", ["t"]).owning(parts(&[("t", 0), ("t", 1), ("t", 2)]), 4),
            MemberSubscription::new("b", ["t"]).owning(parts(&[("t", 3), ("gone", 0)]), 4),
            MemberSubscription::new("c", ["t"]),
        ];
        let target = Assignment::from([
            ("a".to_string(), parts(&[("t", 0), ("t", 2)])),
            ("b".to_string(), parts(&[("t", 3)])),
            ("c".to_string(), parts(&[("t", 1)])),
        ]);
        let revoked = revocations(&members, &target);
        assert_eq!(revoked["a"], parts(&[("t", 1)]));
        assert_eq!(revoked["b"], parts(&[]));
        assert_eq!(revoked["c"], parts(&[]));
    }
}

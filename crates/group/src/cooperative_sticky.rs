use std::cmp::Reverse;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::assignor::Assignment;
use crate::assignor::Assignor;
use crate::member::MemberSubscription;
use crate::subscriptions::Subscriptions;
use crate::topic_partition::TopicPartition;

/// A balanced assignment that moves as few owned partitions as it can, for
/// Kafka's cooperative rebalancing protocol (`cooperative-sticky`). Cairn's
/// own algorithm, after the idea of Kafka's `CooperativeStickyAssignor`.
///
/// Three phases, each deterministic:
///
/// 1. **Keep.** Every member keeps the partitions in its `owned` list that
///    are still valid: the member still subscribes to the topic and the
///    partition exists. A partition claimed by two members goes to the one
///    with the higher `generation`, a tie to the lower member id.
/// 2. **Hand out.** Unowned partitions go, most constrained first (fewest
///    subscribers to its topic, then topic and partition order), each to the
///    subscribed member holding the fewest (tie: lower member id).
/// 3. **Level.** While some member `a` holds a partition that a member `b`
///    subscribed to its topic could take with `count(b) + 2 <= count(a)`,
///    move one, from the fullest member to the emptiest, preferring
///    partitions `a` did not own before. Each move shrinks the sum of squared
///    counts, so this ends.
///
/// Guarantees:
///
/// - **Balance.** For every partition held by `a` and every member `b`
///   subscribed to its topic, `count(b) >= count(a) - 1`. With identical
///   subscriptions the counts therefore differ by at most one. With differing
///   subscriptions this is the best a single move can reach; an assignment
///   that only a chain of moves (a to b, b to c) would balance better is left
///   as is.
/// - **Stickiness.** A member gives up an owned, valid, uncontested partition
///   only in phase 3, and only while it holds two more than someone who could
///   take it. With identical subscriptions it keeps `min(owned, quota)`
///   partitions, where the quota is `floor(n / m)` or `ceil(n / m)` and at
///   most `n % m` members get the ceiling: exactly the moves balance forces.
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

impl CooperativeStickyAssignor {
    pub const NAME: &'static str = "cooperative-sticky";
}

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions_per_topic: &BTreeMap<String, u32>,
    ) -> Assignment {
        let group = Subscriptions::new(members, partitions_per_topic);
        let kept = keep_owned(&group);
        let mut assigned = kept.clone();
        hand_out_unowned(&group, &mut assigned);
        // Each move lowers the sum of squared counts, at most n² at the
        // start, by at least 2: a bound a bug cannot spin past.
        let total: usize = assigned.iter().map(BTreeSet::len).sum();
        let mut moves_left = total * total / 2;
        while let Some(step) = next_leveling_move(&group, &assigned, &kept) {
            assert!(moves_left > 0, "leveling does not converge");
            moves_left -= 1;
            assigned[step.from].remove(&step.partition);
            assigned[step.to].insert(step.partition);
        }
        let per_member = assigned.into_iter().map(Vec::from_iter).collect();
        group.into_assignment(per_member)
    }
}

/// Phase 1: the valid owned partitions each member keeps, conflicts resolved
/// by generation (higher wins), then member id (lower wins).
fn keep_owned(group: &Subscriptions<'_>) -> Vec<BTreeSet<TopicPartition>> {
    let mut claims: BTreeMap<&TopicPartition, (i32, usize)> = BTreeMap::new();
    // Members are in ascending id order, so on equal generations the first
    // claim stands.
    for (index, member) in group.members.iter().enumerate() {
        for tp in &member.owned {
            if !group.is_assignable(tp) || !group.is_subscribed(index, &tp.topic) {
                continue;
            }
            match claims.entry(tp) {
                Entry::Vacant(entry) => {
                    entry.insert((member.generation, index));
                }
                Entry::Occupied(mut entry) => {
                    if member.generation > entry.get().0 {
                        entry.insert((member.generation, index));
                    }
                }
            }
        }
    }
    let mut kept = vec![BTreeSet::new(); group.members.len()];
    for (tp, (_, index)) in claims {
        kept[index].insert(tp.clone());
    }
    kept
}

/// Phase 2: every partition nobody kept goes to the subscriber holding the
/// fewest, partitions of the least-subscribed topics first.
fn hand_out_unowned(group: &Subscriptions<'_>, assigned: &mut [BTreeSet<TopicPartition>]) {
    let held: BTreeSet<TopicPartition> = assigned.iter().flatten().cloned().collect();
    let mut topics: Vec<_> = group.topics.iter().collect();
    topics.sort_by_key(|(topic, t)| (t.subscribers.len(), **topic));
    for (topic, subscribed) in topics {
        for partition in 0..subscribed.partitions {
            let tp = TopicPartition::new(*topic, partition);
            if held.contains(&tp) {
                continue;
            }
            if let Some(to) = fewest(&subscribed.subscribers, assigned) {
                assigned[to].insert(tp);
            }
        }
    }
}

struct Move {
    from: usize,
    partition: TopicPartition,
    to: usize,
}

/// Phase 3: the next move that narrows a gap of two or more, if any.
fn next_leveling_move(
    group: &Subscriptions<'_>,
    assigned: &[BTreeSet<TopicPartition>],
    kept: &[BTreeSet<TopicPartition>],
) -> Option<Move> {
    let mut fullest_first: Vec<usize> = (0..assigned.len()).collect();
    fullest_first.sort_by_key(|&i| (Reverse(assigned[i].len()), i));
    for from in fullest_first {
        let count = assigned[from].len();
        if count < 2 {
            return None;
        }
        // The emptiest member that could take one of `from`'s topics.
        let mut best: Option<(usize, &str)> = None;
        let mut previous_topic = None;
        for tp in &assigned[from] {
            let topic = tp.topic.as_str();
            if previous_topic == Some(topic) {
                continue;
            }
            previous_topic = Some(topic);
            let Some(subscribed) = group.topics.get(topic) else {
                continue;
            };
            let Some(to) = fewest(&subscribed.subscribers, assigned) else {
                continue;
            };
            let rank = |i: usize| (assigned[i].len(), i);
            if assigned[to].len() + 2 <= count && best.is_none_or(|(b, _)| rank(to) < rank(b)) {
                best = Some((to, topic));
            }
        }
        if let Some((to, topic)) = best {
            // Prefer a partition `from` did not own before this rebalance.
            let partition = assigned[from]
                .iter()
                .filter(|tp| tp.topic == topic)
                .min_by_key(|tp| kept[from].contains(*tp))?
                .clone();
            return Some(Move {
                from,
                partition,
                to,
            });
        }
    }
    None
}

/// The member among `candidates` holding the fewest partitions (tie: lowest index).
fn fewest(candidates: &[usize], assigned: &[BTreeSet<TopicPartition>]) -> Option<usize> {
    candidates
        .iter()
        .copied()
        .min_by_key(|&i| (assigned[i].len(), i))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::parts;
    use crate::testing::topics;

    fn member(
        id: &str,
        topics: &[&str],
        owned: &[(&str, u32)],
        generation: i32,
    ) -> MemberSubscription {
        MemberSubscription::new(id, topics.iter().copied()).owning(parts(owned), generation)
    }

    #[test]
    fn a_new_member_takes_only_the_excess() {
        let members = [
            member("a", &["t"], &[("t", 0), ("t", 1), ("t", 2)], 1),
            member("b", &["t"], &[("t", 3), ("t", 4), ("t", 5)], 1),
            member("c", &["t"], &[], -1),
        ];
        let assignment = CooperativeStickyAssignor.assign(&members, &topics(&[("t", 6)]));
        assert_eq!(assignment["a"], parts(&[("t", 1), ("t", 2)]));
        assert_eq!(assignment["b"], parts(&[("t", 4), ("t", 5)]));
        assert_eq!(assignment["c"], parts(&[("t", 0), ("t", 3)]));
    }

    #[test]
    fn a_contested_partition_goes_to_the_higher_generation_then_lower_id() {
        let members = [
            member("a", &["t"], &[("t", 0), ("t", 1)], 1),
            member("b", &["t"], &[("t", 0)], 2),
            member("c", &["t"], &[("t", 1)], 1),
        ];
        let assignment = CooperativeStickyAssignor.assign(&members, &topics(&[("t", 3)]));
        assert_eq!(assignment["a"], parts(&[("t", 1)]));
        assert_eq!(assignment["b"], parts(&[("t", 0)]));
        assert_eq!(assignment["c"], parts(&[("t", 2)]));
    }

    #[test]
    fn owned_partitions_no_longer_valid_are_reassigned() {
        // `a` left topic u and t has shrunk to 2 partitions: neither u-0 nor t-5 can stay.
        let members = [
            member("a", &["t"], &[("t", 5), ("u", 0), ("t", 1)], 3),
            member("b", &["t", "u"], &[], -1),
        ];
        let assignment = CooperativeStickyAssignor.assign(&members, &topics(&[("t", 2), ("u", 1)]));
        // u-0 goes first (one subscriber), then t-0 to the tie's lower id.
        assert_eq!(assignment["a"], parts(&[("t", 0), ("t", 1)]));
        assert_eq!(assignment["b"], parts(&[("u", 0)]));
    }

    #[test]
    fn levels_only_to_members_subscribed_to_the_topic() {
        // `c` only reads u, so it cannot relieve `a`; `b` can.
        let members = [
            member("a", &["t"], &[("t", 0), ("t", 1), ("t", 2), ("t", 3)], 1),
            member("b", &["t"], &[], -1),
            member("c", &["u"], &[], -1),
        ];
        let assignment = CooperativeStickyAssignor.assign(&members, &topics(&[("t", 4), ("u", 0)]));
        assert_eq!(assignment["a"], parts(&[("t", 2), ("t", 3)]));
        assert_eq!(assignment["b"], parts(&[("t", 0), ("t", 1)]));
        assert_eq!(assignment["c"], parts(&[]));
    }
}

//! Random groups: 1-8 members, 1-4 topics of 0-16 partitions.

use std::collections::BTreeMap;

use cairn_group::MemberSubscription;
use cairn_group::TopicPartition;
use proptest::prelude::*;

#[derive(Debug, Clone)]
pub struct Group {
    pub members: Vec<MemberSubscription>,
    pub topics: BTreeMap<String, u32>,
}

impl Group {
    /// The partitions that must be assigned: those of topics someone subscribes to.
    pub fn subscribed_partitions(&self) -> Vec<TopicPartition> {
        self.topics
            .iter()
            .filter(|(topic, _)| self.members.iter().any(|m| m.topics.contains(topic)))
            .flat_map(|(topic, &n)| (0..n).map(move |p| TopicPartition::new(topic.as_str(), p)))
            .collect()
    }
}

pub fn topic_name(index: usize) -> String {
    format!("t{index}")
}

pub fn member_name(index: usize) -> String {
    format!("c{index}")
}

/// Any group: random subscriptions, and random owned lists that may name
/// topics the member left, a topic that does not exist, partitions past the
/// end, duplicates, and partitions other members claim too.
pub fn any_group() -> impl Strategy<Value = Group> {
    (prop::collection::vec(0u32..=16, 1..=4), 1usize..=8)
        .prop_flat_map(|(partitions, member_count)| {
            let topic_count = partitions.len();
            let member = (
                prop::collection::vec(any::<bool>(), topic_count),
                prop::collection::vec((0..=topic_count, 0u32..=18), 0..=8),
                -1i32..=3,
            );
            (
                Just(partitions),
                prop::collection::vec(member, member_count),
            )
        })
        .prop_map(|(partitions, members)| Group {
            topics: topics(&partitions),
            members: members
                .into_iter()
                .enumerate()
                .map(|(index, (subscribed, owned, generation))| {
                    let topics = subscribed
                        .iter()
                        .enumerate()
                        .filter(|(_, &yes)| yes)
                        .map(|(t, _)| topic_name(t));
                    let owned = owned
                        .into_iter()
                        .map(|(t, p)| TopicPartition::new(topic_name(t), p))
                        .collect();
                    MemberSubscription::new(member_name(index), topics).owning(owned, generation)
                })
                .collect(),
        })
}

/// A group whose members all subscribe to the same topics, and own, without
/// conflicts, a random part of the partitions (each partition to a random
/// member or to nobody).
pub fn identical_group() -> impl Strategy<Value = Group> {
    (prop::collection::vec(0u32..=16, 1..=4), 1usize..=8)
        .prop_flat_map(|(partitions, member_count)| {
            let topic_count = partitions.len();
            let total = partitions.iter().sum::<u32>() as usize;
            (
                Just(partitions),
                Just(member_count),
                prop::collection::vec(any::<bool>(), topic_count),
                prop::collection::vec(prop::option::of(0..member_count), total),
            )
        })
        .prop_map(|(partitions, member_count, subscribed, owners)| {
            let topics = self::topics(&partitions);
            let subscribed: Vec<String> = subscribed
                .iter()
                .enumerate()
                .filter(|(_, &yes)| yes)
                .map(|(t, _)| topic_name(t))
                .collect();
            let all = topics.iter().flat_map(|(topic, &n)| {
                (0..n).map(move |p| TopicPartition::new(topic.as_str(), p))
            });
            let mut owned = vec![Vec::new(); member_count];
            for (tp, owner) in all.zip(owners) {
                if let Some(owner) = owner {
                    if subscribed.contains(&tp.topic) {
                        owned[owner].push(tp);
                    }
                }
            }
            let members = owned
                .into_iter()
                .enumerate()
                .map(|(index, owned)| {
                    MemberSubscription::new(member_name(index), subscribed.iter().cloned())
                        .owning(owned, 1)
                })
                .collect();
            Group { members, topics }
        })
}

fn topics(partitions: &[u32]) -> BTreeMap<String, u32> {
    partitions
        .iter()
        .enumerate()
        .map(|(t, &n)| (topic_name(t), n))
        .collect()
}

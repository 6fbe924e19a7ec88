//! The normalized view of a group that every assignor starts from.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use crate::assignor::Assignment;
use crate::member::MemberSubscription;
use crate::topic_partition::TopicPartition;

/// Members sorted by id (each id once, its first entry winning) and, for each
/// existing topic with at least one subscriber, its partition count and the
/// indexes of its subscribers in ascending member-id order.
pub(crate) struct Subscriptions<'a> {
    pub members: Vec<&'a MemberSubscription>,
    pub topics: BTreeMap<&'a str, SubscribedTopic>,
}

pub(crate) struct SubscribedTopic {
    pub partitions: u32,
    /// Indexes into [`Subscriptions::members`], ascending.
    pub subscribers: Vec<usize>,
}

impl<'a> Subscriptions<'a> {
    pub fn new(
        members: &'a [MemberSubscription],
        partitions_per_topic: &'a BTreeMap<String, u32>,
    ) -> Self {
        let mut by_id: BTreeMap<&str, &MemberSubscription> = BTreeMap::new();
        for member in members {
            by_id.entry(member.member_id.as_str()).or_insert(member);
        }
        let members: Vec<&MemberSubscription> = by_id.into_values().collect();

        let mut topics: BTreeMap<&str, SubscribedTopic> = BTreeMap::new();
        for (index, member) in members.iter().enumerate() {
            let wanted: BTreeSet<&str> = member.topics.iter().map(String::as_str).collect();
            for topic in wanted {
                let Some((name, &partitions)) = partitions_per_topic.get_key_value(topic) else {
                    continue;
                };
                topics
                    .entry(name.as_str())
                    .or_insert(SubscribedTopic {
                        partitions,
                        subscribers: Vec::new(),
                    })
                    .subscribers
                    .push(index);
            }
        }
        Self { members, topics }
    }

    /// Whether member `index` subscribes to `topic` and the topic exists.
    pub fn is_subscribed(&self, index: usize, topic: &str) -> bool {
        self.topics
            .get(topic)
            .is_some_and(|t| t.subscribers.binary_search(&index).is_ok())
    }

    /// Whether `tp` is a partition that must be assigned.
    pub fn is_assignable(&self, tp: &TopicPartition) -> bool {
        self.topics
            .get(tp.topic.as_str())
            .is_some_and(|t| tp.partition < t.partitions)
    }

    /// Every assignable partition, sorted by topic then partition.
    pub fn all_partitions(&self) -> impl Iterator<Item = TopicPartition> + '_ {
        self.topics
            .iter()
            .flat_map(|(topic, t)| (0..t.partitions).map(move |p| TopicPartition::new(*topic, p)))
    }

    /// Turns per-member lists (indexed like `members`) into an [`Assignment`]
    /// with every member present and each list sorted.
    pub fn into_assignment(self, per_member: Vec<Vec<TopicPartition>>) -> Assignment {
        debug_assert_eq!(per_member.len(), self.members.len());
        self.members
            .iter()
            .zip(per_member)
            .map(|(member, mut partitions)| {
                partitions.sort();
                (member.member_id.clone(), partitions)
            })
            .collect()
    }
}

use serde::Deserialize;
use serde::Serialize;

use crate::topic_partition::TopicPartition;

/// Generation of a member that owns nothing yet (Kafka's `-1`).
pub const NO_GENERATION: i32 = -1;

/// What one group member told the coordinator when it joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberSubscription {
    pub member_id: String,
    /// The topics the member subscribes to.
    pub topics: Vec<String>,
    /// The partitions the member owns now (used by sticky / cooperative assignors).
    pub owned: Vec<TopicPartition>,
    /// The generation in which `owned` was assigned ([`NO_GENERATION`] if none).
    pub generation: i32,
}

impl MemberSubscription {
    /// A member that subscribes to `topics` and owns nothing.
    pub fn new<T: Into<String>>(
        member_id: impl Into<String>,
        topics: impl IntoIterator<Item = T>,
    ) -> Self {
        Self {
            member_id: member_id.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            owned: Vec::new(),
            generation: NO_GENERATION,
        }
    }

    /// The same member, owning `owned` since `generation`.
    pub fn owning(mut self, owned: Vec<TopicPartition>, generation: i32) -> Self {
        self.owned = owned;
        self.generation = generation;
        self
    }
}

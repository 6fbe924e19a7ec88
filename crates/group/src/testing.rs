//! Helpers for the unit tests.

use std::collections::BTreeMap;

use crate::topic_partition::TopicPartition;

pub(crate) fn topics(list: &[(&str, u32)]) -> BTreeMap<String, u32> {
    list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

pub(crate) fn parts(list: &[(&str, u32)]) -> Vec<TopicPartition> {
    list.iter()
        .map(|(t, p)| TopicPartition::new(*t, *p))
        .collect()
}

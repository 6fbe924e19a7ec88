//! Kafka's consumer protocol (protocol type `consumer`): how a member's
//! subscription travels in JoinGroup metadata and its assignment in
//! SyncGroup, as bytes the coordinator does not look into.
//!
//! Big-endian, Kafka's non-flexible encoding: strings are an `i16` length and
//! UTF-8 bytes, arrays an `i32` count, nullable bytes an `i32` length (`-1`
//! for null).
//!
//! ```text
//! Subscription v0: version i16, topics [string], user_data bytes?
//!              v1: + owned_partitions [topic string, partitions [i32]]
//!              v2: + generation i32        (written: v2)
//!              v3: + rack_id string?
//! Assignment   v0: version i16, assigned [topic string, partitions [i32]], user_data bytes?
//!              v1: same fields             (written: v1)
//! ```

use std::collections::BTreeMap;

use crate::member::NO_GENERATION;
use crate::topic_partition::TopicPartition;

/// Kafka's protocol type for consumers.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// A member's subscription as carried in its JoinGroup metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub owned: Vec<TopicPartition>,
    pub generation: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed consumer protocol {what}: {reason}")]
pub struct ProtocolError {
    what: &'static str,
    reason: String,
}

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn err(&self, reason: impl Into<String>) -> ProtocolError {
        ProtocolError {
            what: self.what,
            reason: reason.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.buf.len() < n {
            return Err(self.err(format!("needs {n} more bytes, {} left", self.buf.len())));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, ProtocolError> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }

    fn i32(&mut self) -> Result<i32, ProtocolError> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    fn string(&mut self) -> Result<String, ProtocolError> {
        let len = self.i16()?;
        let len = usize::try_from(len).map_err(|_| self.err("null string"))?;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.err("string is not UTF-8"))
    }

    fn count(&mut self) -> Result<usize, ProtocolError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(0);
        }
        let n = n as usize;
        // Every element takes at least 2 bytes: refuse absurd counts early.
        if n > self.buf.len() {
            return Err(self.err(format!("array of {n} elements in {} bytes", self.buf.len())));
        }
        Ok(n)
    }

    fn nullable_bytes(&mut self) -> Result<(), ProtocolError> {
        let len = self.i32()?;
        if len >= 0 {
            self.take(len as usize)?;
        }
        Ok(())
    }

    fn topic_partitions(&mut self) -> Result<Vec<TopicPartition>, ProtocolError> {
        let mut out = Vec::new();
        for _ in 0..self.count()? {
            let topic = self.string()?;
            for _ in 0..self.count()? {
                let p = self.i32()?;
                let p = u32::try_from(p).map_err(|_| self.err("negative partition"))?;
                out.push(TopicPartition::new(topic.clone(), p));
            }
        }
        Ok(out)
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    let len = s.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

fn put_topic_partitions(out: &mut Vec<u8>, tps: &[TopicPartition]) {
    let mut by_topic: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for tp in tps {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    out.extend_from_slice(&(by_topic.len() as i32).to_be_bytes());
    for (topic, mut parts) in by_topic {
        parts.sort_unstable();
        put_string(out, topic);
        out.extend_from_slice(&(parts.len() as i32).to_be_bytes());
        for p in parts {
            out.extend_from_slice(&(p as i32).to_be_bytes());
        }
    }
}

impl Subscription {
    /// Version 2: topics, no user data, owned partitions, generation.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&2i16.to_be_bytes());
        out.extend_from_slice(&(self.topics.len() as i32).to_be_bytes());
        for t in &self.topics {
            put_string(&mut out, t);
        }
        out.extend_from_slice(&(-1i32).to_be_bytes());
        put_topic_partitions(&mut out, &self.owned);
        out.extend_from_slice(&self.generation.to_be_bytes());
        out
    }

    /// Any version from 0; fields of later versions are ignored.
    pub fn decode(bytes: &[u8]) -> Result<Subscription, ProtocolError> {
        let mut r = Reader {
            buf: bytes,
            what: "subscription",
        };
        let version = r.i16()?;
        if version < 0 {
            return Err(r.err(format!("version {version}")));
        }
        let mut topics = Vec::new();
        for _ in 0..r.count()? {
            topics.push(r.string()?);
        }
        r.nullable_bytes()?;
        let owned = if version >= 1 {
            r.topic_partitions()?
        } else {
            Vec::new()
        };
        let generation = if version >= 2 {
            r.i32()?
        } else {
            NO_GENERATION
        };
        Ok(Subscription {
            topics,
            owned,
            generation,
        })
    }
}

/// A member's assignment (version 1, no user data).
pub fn encode_assignment(partitions: &[TopicPartition]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&1i16.to_be_bytes());
    put_topic_partitions(&mut out, partitions);
    out.extend_from_slice(&(-1i32).to_be_bytes());
    out
}

/// The partitions of an assignment of any version; empty bytes (a member
/// the leader gave nothing) decode to no partitions.
pub fn decode_assignment(bytes: &[u8]) -> Result<Vec<TopicPartition>, ProtocolError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader {
        buf: bytes,
        what: "assignment",
    };
    let version = r.i16()?;
    if version < 0 {
        return Err(r.err(format!("version {version}")));
    }
    let mut out = r.topic_partitions()?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn subscription_v0_from_an_old_client_decodes() {
        // version 0, topics ["a"], user_data null
        let bytes = [0, 0, 0, 0, 0, 1, 0, 1, b'a', 0xff, 0xff, 0xff, 0xff];
        let s = Subscription::decode(&bytes).unwrap();
        assert_eq!(s.topics, vec!["a".to_string()]);
        assert!(s.owned.is_empty());
        assert_eq!(s.generation, NO_GENERATION);
    }

    #[test]
    fn truncated_or_absurd_input_is_an_error_not_a_panic() {
        let good = Subscription {
            topics: vec!["orders".into()],
            owned: vec![TopicPartition::new("orders", 3)],
            generation: 4,
        }
        .encode();
        for cut in 0..good.len() {
            assert!(Subscription::decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode_assignment(&[0, 1, 0x7f, 0xff, 0xff, 0xff]).is_err());
    }

    proptest! {
        #[test]
        fn round_trips(
            topics in proptest::collection::vec("[a-z]{1,8}", 0..5),
            owned in proptest::collection::btree_set(("[a-z]{1,4}", 0u32..64), 0..20),
            generation in -1i32..1000,
        ) {
            let owned: Vec<TopicPartition> =
                owned.into_iter().map(|(t, p)| TopicPartition::new(t, p)).collect();
            let s = Subscription { topics, owned: owned.clone(), generation };
            prop_assert_eq!(Subscription::decode(&s.encode()).unwrap(), s);
            prop_assert_eq!(decode_assignment(&encode_assignment(&owned)).unwrap(), owned);
        }
    }
}

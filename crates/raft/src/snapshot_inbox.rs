//! Receiving side of snapshot streaming: a snapshot travels as a sequence of
//! [`SnapshotChunk`]s of at most [`SNAPSHOT_CHUNK_BYTES`] each, one message
//! per chunk, in order; the inbox puts them back together per group and
//! hands the whole snapshot to openraft once the last one is in.
//!
//! Bounded: a snapshot larger than [`MAX_SNAPSHOT_BYTES`] is refused, and at
//! most [`MAX_ASSEMBLIES`] snapshots totalling [`MAX_ASSEMBLING_BYTES`] are
//! put together at once (one that saw no chunk for [`STALE_AFTER`] makes
//! room). A chunk out of sequence drops the group's assembly; the sender
//! starts over at its next attempt.

use cairn_clock::Instant;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::network::SnapshotChunk;
use crate::types::GroupId;
use crate::types::Snapshot;
use crate::types::SnapshotMeta;
use crate::types::Vote;

/// Bytes of snapshot per message at most.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// The largest snapshot a node accepts.
pub const MAX_SNAPSHOT_BYTES: u64 = 1 << 30;
/// Snapshot bytes being put together at once, over all groups, at most.
pub const MAX_ASSEMBLING_BYTES: u64 = 2 << 30;
/// Snapshots being put together at once at most.
pub const MAX_ASSEMBLIES: usize = 1024;
/// An assembly that saw no chunk for this long may be dropped for another.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

struct Assembly {
    vote: Vote,
    meta: SnapshotMeta,
    total: u64,
    data: Vec<u8>,
    touched: Instant,
}

/// What a chunk completed.
pub enum Received {
    /// More chunks to come.
    Partial,
    /// The last chunk: the whole snapshot, and the vote it was sent under.
    Complete(Vote, Snapshot),
}

/// The snapshots a node is receiving, by group.
#[derive(Default)]
pub struct SnapshotInbox {
    assemblies: Mutex<HashMap<GroupId, Assembly>>,
}

impl SnapshotInbox {
    /// Takes one chunk of `group`'s snapshot. The error is a reason to send
    /// back to the sender.
    pub fn receive(&self, group: GroupId, chunk: SnapshotChunk) -> Result<Received, String> {
        self.receive_at(group, chunk, cairn_clock::now())
    }

    fn receive_at(
        &self,
        group: GroupId,
        chunk: SnapshotChunk,
        now: Instant,
    ) -> Result<Received, String> {
        if chunk.total > MAX_SNAPSHOT_BYTES {
            return Err(format!(
                "snapshot of group {group} is {} bytes, more than the {MAX_SNAPSHOT_BYTES} accepted",
                chunk.total
            ));
        }
        let end = chunk.offset.saturating_add(chunk.data.len() as u64);
        if end > chunk.total {
            return Err(format!(
                "snapshot chunk of group {group} ends at {end}, past the snapshot's {} bytes",
                chunk.total
            ));
        }
        let mut assemblies = self.assemblies.lock().unwrap_or_else(|e| e.into_inner());
        if chunk.offset == 0 {
            assemblies.remove(&group);
            assemblies.retain(|_, a| now.duration_since(a.touched) < STALE_AFTER);
            let assembling: u64 = assemblies.values().map(|a| a.total).sum();
            if assemblies.len() >= MAX_ASSEMBLIES
                || assembling.saturating_add(chunk.total) > MAX_ASSEMBLING_BYTES
            {
                metrics::counter!("cairn_raft_snapshots_refused_total").increment(1);
                return Err(format!(
                    "{} snapshots ({assembling} bytes) are being received; group {group}'s must wait",
                    assemblies.len()
                ));
            }
            if end == chunk.total {
                return Ok(Received::Complete(
                    chunk.vote,
                    Snapshot {
                        meta: chunk.meta,
                        snapshot: std::io::Cursor::new(chunk.data),
                    },
                ));
            }
            // Grows as chunks come; no up-front reservation of a large total.
            let mut data =
                Vec::with_capacity(chunk.total.min(SNAPSHOT_CHUNK_BYTES as u64 * 4) as usize);
            data.extend_from_slice(&chunk.data);
            assemblies.insert(
                group,
                Assembly {
                    vote: chunk.vote,
                    meta: chunk.meta,
                    total: chunk.total,
                    data,
                    touched: now,
                },
            );
            return Ok(Received::Partial);
        }
        let fits = assemblies.get(&group).is_some_and(|a| {
            a.vote == chunk.vote
                && a.meta == chunk.meta
                && a.total == chunk.total
                && a.data.len() as u64 == chunk.offset
        });
        if !fits {
            let had = assemblies.remove(&group).map(|a| a.data.len());
            return Err(format!(
                "snapshot chunk of group {group} at {} does not continue the one being received \
                 ({had:?} bytes in); start over",
                chunk.offset
            ));
        }
        let a = assemblies.get_mut(&group).expect("checked above");
        a.data.extend_from_slice(&chunk.data);
        a.touched = now;
        if end < chunk.total {
            return Ok(Received::Partial);
        }
        let a = assemblies.remove(&group).expect("checked above");
        Ok(Received::Complete(
            a.vote,
            Snapshot {
                meta: a.meta,
                snapshot: std::io::Cursor::new(a.data),
            },
        ))
    }

    /// Snapshots being put together now.
    pub fn assembling(&self) -> usize {
        self.assemblies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

/// `data` cut into chunks of at most `chunk_bytes`, as (offset, bytes); one
/// empty chunk for empty data.
pub(crate) fn chunks(data: &[u8], chunk_bytes: usize) -> Vec<(u64, &[u8])> {
    if data.is_empty() {
        return vec![(0, data)];
    }
    data.chunks(chunk_bytes.max(1))
        .enumerate()
        .map(|(i, c)| ((i * chunk_bytes.max(1)) as u64, c))
        .collect()
}

#[cfg(test)]
mod tests {
    use openraft::vote::RaftLeaderIdExt;
    use openraft::RaftTypeConfig;

    use super::*;
    use crate::types::LogId;
    use crate::types::TypeConfig;

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(LogId::new(
                <TypeConfig as RaftTypeConfig>::LeaderId::new_committed(1, 1),
                index,
            )),
            last_membership: Default::default(),
        }
    }

    fn vote() -> Vote {
        Vote::new(1, 1)
    }

    fn send(
        inbox: &SnapshotInbox,
        group: GroupId,
        data: &[u8],
        index: u64,
        chunk_bytes: usize,
    ) -> Vec<Result<Received, String>> {
        chunks(data, chunk_bytes)
            .into_iter()
            .map(|(offset, c)| {
                inbox.receive(
                    group,
                    SnapshotChunk {
                        vote: vote(),
                        meta: meta(index),
                        total: data.len() as u64,
                        offset,
                        data: c.to_vec(),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn chunks_cover_the_data_in_order() {
        let data: Vec<u8> = (0..=255).cycle().take(2500).collect();
        let c = chunks(&data, 1000);
        assert_eq!(
            c.iter().map(|(o, b)| (*o, b.len())).collect::<Vec<_>>(),
            vec![(0, 1000), (1000, 1000), (2000, 500)]
        );
        assert_eq!(chunks(&[], 1000), vec![(0, &[][..])]);
    }

    #[test]
    fn a_snapshot_in_many_chunks_comes_out_whole() {
        let inbox = SnapshotInbox::default();
        let data: Vec<u8> = (0..=255).cycle().take(10_000).collect();
        let results = send(&inbox, 3, &data, 7, 999);
        assert_eq!(results.len(), 11);
        for r in &results[..10] {
            assert!(matches!(r, Ok(Received::Partial)));
        }
        let Ok(Received::Complete(v, snapshot)) = results.into_iter().last().unwrap() else {
            panic!("the last chunk did not complete the snapshot");
        };
        assert_eq!(v, vote());
        assert_eq!(snapshot.meta, meta(7));
        assert_eq!(snapshot.snapshot.into_inner(), data);
        assert_eq!(inbox.assembling(), 0);
        // An empty snapshot is one chunk.
        let results = send(&inbox, 3, &[], 8, 999);
        assert!(matches!(&results[..], [Ok(Received::Complete(..))]));
    }

    #[test]
    fn a_chunk_out_of_sequence_drops_the_assembly_and_a_restart_succeeds() {
        let inbox = SnapshotInbox::default();
        let data = vec![7u8; 3000];
        let c = chunks(&data, 1000);
        let chunk = |i: usize, index: u64| SnapshotChunk {
            vote: vote(),
            meta: meta(index),
            total: 3000,
            offset: c[i].0,
            data: c[i].1.to_vec(),
        };
        assert!(matches!(
            inbox.receive(1, chunk(0, 5)),
            Ok(Received::Partial)
        ));
        // Chunk 1 lost: chunk 2 does not fit.
        let err = inbox.receive(1, chunk(2, 5)).err().unwrap();
        assert!(err.contains("start over"), "{err}");
        assert_eq!(inbox.assembling(), 0);
        // A chunk of another snapshot does not continue this one either.
        assert!(matches!(
            inbox.receive(1, chunk(0, 5)),
            Ok(Received::Partial)
        ));
        assert!(inbox.receive(1, chunk(1, 6)).is_err());
        // Starting over works.
        assert!(send(&inbox, 1, &data, 5, 1000)
            .into_iter()
            .last()
            .is_some_and(|r| matches!(r, Ok(Received::Complete(..)))));
    }

    #[test]
    fn limits_refuse_oversized_and_too_many_snapshots_until_stale_ones_go() {
        let inbox = SnapshotInbox::default();
        let big = SnapshotChunk {
            vote: vote(),
            meta: meta(1),
            total: MAX_SNAPSHOT_BYTES + 1,
            offset: 0,
            data: vec![0; 10],
        };
        assert!(inbox.receive(1, big).is_err());
        let start = cairn_clock::now();
        let first = |group: GroupId, total: u64, at: Instant| {
            inbox.receive_at(
                group,
                SnapshotChunk {
                    vote: vote(),
                    meta: meta(1),
                    total,
                    offset: 0,
                    data: vec![0; 10],
                },
                at,
            )
        };
        // Byte budget: two snapshots of the largest size fill it.
        assert!(first(1, MAX_SNAPSHOT_BYTES, start).is_ok());
        assert!(first(2, MAX_SNAPSHOT_BYTES, start).is_ok());
        assert!(first(3, 100, start).is_err());
        // Once the others are stale, a new one gets in.
        assert!(first(3, 100, start + STALE_AFTER).is_ok());
        assert_eq!(inbox.assembling(), 1);
        // Count limit.
        for g in 10..(10 + MAX_ASSEMBLIES as u64 - 1) {
            assert!(first(g, 100, start + STALE_AFTER).is_ok(), "group {g}");
        }
        assert!(first(5000, 100, start + STALE_AFTER).is_err());
        // A chunk past the end is refused.
        let past = SnapshotChunk {
            vote: vote(),
            meta: meta(1),
            total: 5,
            offset: 0,
            data: vec![0; 10],
        };
        assert!(inbox.receive(9999, past).is_err());
    }
}

//! Terse construction of hand-made histories for tests.
//!
//! The builder numbers ops in order and stamps each with its clock, which advances by
//! `step_us` (default 1 ms) after every op; [`HistoryBuilder::at_ms`] sets it.
//!
//! ```
//! use cairn_jepsen::HistoryBuilder;
//! let mut b = HistoryBuilder::new();
//! let (_invoke, _ok) = b.send_ok(0, 1, 7, 0); // producer 0 writes key 1 value 7 at offset 0
//! b.poll(1000, &[(1, 0, 1, 7)]);             // consumer 1000 reads it back
//! let history = b.build();
//! assert_eq!(history.ops.len(), 4);
//! ```

use crate::history::{History, KeyedRecord, Op, OpF, OpKind, Read, NEMESIS_PROCESS};

/// Builds a [`History`] op by op.
#[derive(Debug, Clone)]
pub struct HistoryBuilder {
    ops: Vec<Op>,
    now_us: u64,
    step_us: u64,
}

impl Default for HistoryBuilder {
    fn default() -> Self {
        HistoryBuilder::new()
    }
}

impl HistoryBuilder {
    pub fn new() -> HistoryBuilder {
        HistoryBuilder {
            ops: Vec::new(),
            now_us: 0,
            step_us: 1_000,
        }
    }

    /// Continues `history`: the next op follows its last one.
    pub fn from_history(history: History) -> HistoryBuilder {
        let mut builder = HistoryBuilder::new();
        builder.now_us = history.end_us() + builder.step_us;
        builder.ops = history.ops;
        builder
    }

    /// The next op happens at `ms` milliseconds.
    pub fn at_ms(&mut self, ms: u64) -> &mut Self {
        self.now_us = ms * 1_000;
        self
    }

    /// How far the clock moves after each op.
    pub fn step_us(&mut self, step_us: u64) -> &mut Self {
        self.step_us = step_us;
        self
    }

    /// Appends `op`, overwriting its index and time; returns its index.
    pub fn push(&mut self, mut op: Op) -> u64 {
        let index = self.ops.last().map_or(0, |last| last.index + 1);
        op.index = index;
        op.time_us = self.now_us;
        self.now_us += self.step_us;
        self.ops.push(op);
        index
    }

    /// The last op pushed, to set fields the helpers do not (e.g. `node`, `error`).
    pub fn last_mut(&mut self) -> Option<&mut Op> {
        self.ops.last_mut()
    }

    pub fn invoke_send(&mut self, process: u64, key: u32, value: u64) -> u64 {
        let mut op = Op::new(0, 0, process, OpKind::Invoke, OpF::Send);
        op.key = Some(key);
        op.value = Some(value);
        self.push(op)
    }

    /// Completes a send; `offset` is set only on `ok`.
    pub fn complete_send(
        &mut self,
        process: u64,
        kind: OpKind,
        key: u32,
        value: u64,
        offset: Option<i64>,
    ) -> u64 {
        let mut op = Op::new(0, 0, process, kind, OpF::Send);
        op.key = Some(key);
        op.value = Some(value);
        if kind == OpKind::Ok {
            op.partition = Some(key);
            op.offset = offset;
        }
        self.push(op)
    }

    /// A send acknowledged at `offset`; returns (invoke, ok) indexes.
    pub fn send_ok(&mut self, process: u64, key: u32, value: u64, offset: i64) -> (u64, u64) {
        let invoke = self.invoke_send(process, key, value);
        let ok = self.complete_send(process, OpKind::Ok, key, value, Some(offset));
        (invoke, ok)
    }

    /// A send that definitely failed; returns (invoke, fail) indexes.
    pub fn send_fail(&mut self, process: u64, key: u32, value: u64) -> (u64, u64) {
        let invoke = self.invoke_send(process, key, value);
        let fail = self.complete_send(process, OpKind::Fail, key, value, None);
        (invoke, fail)
    }

    /// A send with an unknown outcome; returns (invoke, info) indexes.
    pub fn send_info(&mut self, process: u64, key: u32, value: u64) -> (u64, u64) {
        let invoke = self.invoke_send(process, key, value);
        let info = self.complete_send(process, OpKind::Info, key, value, None);
        (invoke, info)
    }

    pub fn invoke_poll(&mut self, process: u64) -> u64 {
        self.push(Op::new(0, 0, process, OpKind::Invoke, OpF::Poll))
    }

    /// Completes a poll; `reads` are (partition, offset, key, value) and only kept on `ok`.
    pub fn complete_poll(
        &mut self,
        process: u64,
        kind: OpKind,
        reads: &[(u32, i64, u32, u64)],
    ) -> u64 {
        let mut op = Op::new(0, 0, process, kind, OpF::Poll);
        if kind == OpKind::Ok {
            op.reads = reads
                .iter()
                .map(|&(partition, offset, key, value)| Read {
                    partition,
                    offset,
                    key,
                    value,
                })
                .collect();
        }
        self.push(op)
    }

    /// A poll that returned `reads` (partition, offset, key, value); returns the ok index.
    pub fn poll(&mut self, process: u64, reads: &[(u32, i64, u32, u64)]) -> u64 {
        self.invoke_poll(process);
        self.complete_poll(process, OpKind::Ok, reads)
    }

    /// A consumer starting at `positions` (partition, next offset); returns the ok index.
    pub fn assign(&mut self, process: u64, positions: &[(u32, i64)]) -> u64 {
        let mut invoke = Op::new(0, 0, process, OpKind::Invoke, OpF::Assign);
        invoke.positions = Some(positions.to_vec());
        let mut ok = invoke.clone();
        ok.kind = OpKind::Ok;
        self.push(invoke);
        self.push(ok)
    }

    /// Compaction workload: a keyed write of `key` to `partition` (value `value`, or a tombstone
    /// that `value` names) completing as `kind` (`offset` only on `ok`); returns (invoke,
    /// completion) indexes.
    #[allow(clippy::too_many_arguments)]
    pub fn kv_write(
        &mut self,
        process: u64,
        partition: u32,
        key: u32,
        value: u64,
        tombstone: bool,
        kind: OpKind,
        offset: Option<i64>,
    ) -> (u64, u64) {
        let mut op = Op::new(0, 0, process, OpKind::Invoke, OpF::Send);
        op.key = Some(key);
        op.value = Some(value);
        op.tombstone = tombstone;
        op.partition = Some(partition);
        let mut done = op.clone();
        done.kind = kind;
        if kind == OpKind::Ok {
            done.offset = offset;
        }
        (self.push(op), self.push(done))
    }

    /// Compaction workload: the final read of `node`'s replica of `partition`, whose high
    /// watermark is `high_watermark`, finding `records` (offset, key, value; `None` for a
    /// tombstone); returns the ok index.
    pub fn replica_read(
        &mut self,
        node: u64,
        partition: u32,
        high_watermark: i64,
        records: &[(i64, u32, Option<u64>)],
    ) -> u64 {
        let process = 2000 + node;
        let mut op = Op::new(0, 0, process, OpKind::Invoke, OpF::ReplicaRead);
        op.node = Some(node);
        op.partition = Some(partition);
        let mut ok = op.clone();
        ok.kind = OpKind::Ok;
        ok.offset = Some(high_watermark);
        ok.records = records
            .iter()
            .map(|&(offset, key, value)| KeyedRecord { offset, key, value })
            .collect();
        self.push(op);
        self.push(ok)
    }

    /// Group workload: a commit of `positions` (partition, next offset) completing as `kind`;
    /// returns (invoke, completion) indexes.
    pub fn commit(&mut self, process: u64, kind: OpKind, positions: &[(u32, i64)]) -> (u64, u64) {
        let mut op = Op::new(0, 0, process, OpKind::Invoke, OpF::Commit);
        op.positions = Some(positions.to_vec());
        let mut done = op.clone();
        done.kind = kind;
        (self.push(op), self.push(done))
    }

    /// Group workload: a poll in which the member resumed at `positions` (partition, offset)
    /// on newly assigned partitions; returns (invoke, ok) indexes.
    pub fn resume(&mut self, process: u64, positions: &[(u32, i64)]) -> (u64, u64) {
        let invoke = self.invoke_poll(process);
        let mut ok = Op::new(0, 0, process, OpKind::Ok, OpF::Poll);
        ok.positions = Some(positions.to_vec());
        (invoke, self.push(ok))
    }

    /// The nemesis starts fault `name`; returns its index.
    pub fn fault(&mut self, name: &str) -> u64 {
        let mut op = Op::new(0, 0, NEMESIS_PROCESS, OpKind::Invoke, OpF::Fault);
        op.fault = Some(name.to_string());
        self.push(op)
    }

    /// The nemesis heals fault `name`; returns its index.
    pub fn heal(&mut self, name: &str) -> u64 {
        let mut op = Op::new(0, 0, NEMESIS_PROCESS, OpKind::Info, OpF::Fault);
        op.fault = Some(name.to_string());
        self.push(op)
    }

    pub fn build(self) -> History {
        History::new(self.ops)
    }
}

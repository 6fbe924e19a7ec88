//! One pass over the history that pairs invokes with completions and collects the facts every
//! anomaly check reads: the sends and their outcomes, the records each poll returned, each
//! consumer's reads per partition (with the `assign`s that reset them), and which offsets are
//! known to hold a record.
//!
//! A poll that completed `info` may have moved its consumer, so it resets that consumer's
//! position on every partition like an `assign` with an unknown outcome.
//!
//! Where the history breaks its own rules the pass records a [`Problem`] (reported as
//! `malformed-history`) and carries on as best it can: an invoke that never completes is an
//! unknown outcome, like `info`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::history::{History, Op, OpF, OpKind, Read};

/// How a send ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendOutcome {
    Ok {
        partition: u32,
        offset: i64,
    },
    Fail,
    /// `info`, or never completed.
    Unknown,
}

#[derive(Debug, Clone)]
pub(crate) struct Send {
    pub process: u64,
    pub key: u32,
    pub value: u64,
    pub invoke: u64,
    pub completion: Option<u64>,
    pub outcome: SendOutcome,
}

impl Send {
    /// The send's ops: its invoke and, if it completed, its completion.
    pub fn ops(&self) -> Vec<u64> {
        let mut ops = vec![self.invoke];
        ops.extend(self.completion);
        ops
    }
}

/// A poll that completed `ok`.
#[derive(Debug, Clone)]
pub(crate) struct Poll {
    /// Index of the `ok` op.
    pub op: u64,
    pub reads: Vec<Read>,
}

/// One step of a consumer on one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConsumerStep {
    Read {
        offset: i64,
        poll: u64,
    },
    /// An `assign` (or a poll with an unknown outcome, `assign` then names that poll): the
    /// consumer continues after `last` (position - 1), or from an unknown place.
    Reset {
        last: Option<i64>,
        assign: u64,
    },
}

/// A break of the history's format rules.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub ops: Vec<u64>,
    pub description: String,
}

#[derive(Debug, Default)]
pub(crate) struct Model {
    /// In invoke order.
    pub sends: Vec<Send>,
    /// (key, value) -> position in `sends`.
    pub send_by_value: HashMap<(u32, u64), usize>,
    /// `ok` polls in history order.
    pub polls: Vec<Poll>,
    /// (consumer process, partition) -> its steps in history order.
    pub consumer_steps: BTreeMap<(u64, u32), Vec<ConsumerStep>>,
    /// partition -> offsets that some read or send ack shows to hold a record.
    pub known_offsets: BTreeMap<u32, BTreeSet<i64>>,
    /// (key, value) -> the first poll that read it.
    pub first_read: HashMap<(u32, u64), u64>,
    /// partition -> the highest log start any poll reported: retention
    /// deleted every record below it, so an acknowledged record there that
    /// no poll read cannot be checked (counted, not judged).
    pub log_start: BTreeMap<u32, i64>,
    pub problems: Vec<Problem>,
}

impl Model {
    /// Whether retention deleted offset `offset` of `partition` during the run.
    pub fn trimmed(&self, partition: u32, offset: i64) -> bool {
        self.log_start
            .get(&partition)
            .is_some_and(|&start| offset < start)
    }
}

/// What an open invoke was.
struct Open {
    op: usize,
    send: Option<usize>,
}

impl Model {
    pub fn build(history: &History) -> Model {
        let mut model = Model::default();
        let mut open: HashMap<u64, Open> = HashMap::new();
        let mut open_faults: HashMap<&str, u64> = HashMap::new();
        let mut last_index: Option<u64> = None;

        for (pos, op) in history.ops.iter().enumerate() {
            if let Some(prev) = last_index {
                if op.index <= prev {
                    model.problem(
                        vec![prev, op.index],
                        format!(
                            "op index {} follows {prev}: indexes must increase",
                            op.index
                        ),
                    );
                }
            }
            last_index = Some(op.index);

            if op.f == OpF::Fault {
                model.fault(op, &mut open_faults);
            } else if op.is_invoke() {
                if let Some(stale) = open.remove(&op.process) {
                    let stale_index = history.ops[stale.op].index;
                    model.problem(
                        vec![stale_index, op.index],
                        format!(
                            "process {} invoked op {} while op {stale_index} was still open",
                            op.process, op.index
                        ),
                    );
                }
                let send = if op.f == OpF::Send {
                    model.invoke_send(op)
                } else {
                    None
                };
                open.insert(op.process, Open { op: pos, send });
            } else {
                let Some(invoke) = open.remove(&op.process) else {
                    model.problem(
                        vec![op.index],
                        format!(
                            "process {} completed op {} without an invoke",
                            op.process, op.index
                        ),
                    );
                    continue;
                };
                let invoke_op = &history.ops[invoke.op];
                if invoke_op.f != op.f {
                    model.problem(
                        vec![invoke_op.index, op.index],
                        format!(
                            "op {} completes a {:?} invoke as {:?}",
                            op.index, invoke_op.f, op.f
                        ),
                    );
                    continue;
                }
                match op.f {
                    OpF::Send => {
                        if let Some(send) = invoke.send {
                            model.complete_send(send, op);
                        }
                    }
                    OpF::Poll => model.complete_poll(op),
                    OpF::Assign => model.complete_assign(invoke_op, op),
                    OpF::Fault | OpF::Commit | OpF::ReplicaRead => {}
                }
            }
        }

        model
    }

    fn problem(&mut self, ops: Vec<u64>, description: String) {
        self.problems.push(Problem { ops, description });
    }

    fn fault<'h>(&mut self, op: &'h Op, open_faults: &mut HashMap<&'h str, u64>) {
        let Some(name) = op.fault.as_deref() else {
            self.problem(
                vec![op.index],
                format!("fault op {} names no fault", op.index),
            );
            return;
        };
        if op.is_invoke() {
            *open_faults.entry(name).or_insert(0) += 1;
            return;
        }
        match open_faults.get_mut(name) {
            Some(n) if *n > 0 => *n -= 1,
            _ => self.problem(
                vec![op.index],
                format!("op {} heals fault {name:?}, which is not open", op.index),
            ),
        }
    }

    fn invoke_send(&mut self, op: &Op) -> Option<usize> {
        let (Some(key), Some(value)) = (op.key, op.value) else {
            self.problem(
                vec![op.index],
                format!("send {} has no key or no value", op.index),
            );
            return None;
        };
        if let Some(&earlier) = self.send_by_value.get(&(key, value)) {
            let earlier = self.sends[earlier].invoke;
            self.problem(
                vec![earlier, op.index],
                format!(
                    "key {key} value {value} sent twice (ops {earlier} and {})",
                    op.index
                ),
            );
            return None;
        }
        self.send_by_value.insert((key, value), self.sends.len());
        self.sends.push(Send {
            process: op.process,
            key,
            value,
            invoke: op.index,
            completion: None,
            outcome: SendOutcome::Unknown,
        });
        Some(self.sends.len() - 1)
    }

    fn complete_send(&mut self, send: usize, op: &Op) {
        let (invoke, key, value) = {
            let s = &self.sends[send];
            (s.invoke, s.key, s.value)
        };
        if op.key.is_some_and(|k| k != key) || op.value.is_some_and(|v| v != value) {
            self.problem(
                vec![invoke, op.index],
                format!(
                    "send completion {} names another key or value than its invoke",
                    op.index
                ),
            );
        }
        let outcome = match op.kind {
            OpKind::Ok => match op.offset {
                Some(offset) => {
                    let partition = op.partition.unwrap_or(key);
                    self.known_offsets
                        .entry(partition)
                        .or_default()
                        .insert(offset);
                    SendOutcome::Ok { partition, offset }
                }
                None => {
                    self.problem(
                        vec![invoke, op.index],
                        format!("send ok {} has no offset", op.index),
                    );
                    SendOutcome::Unknown
                }
            },
            OpKind::Fail => SendOutcome::Fail,
            OpKind::Info | OpKind::Invoke => SendOutcome::Unknown,
        };
        let s = &mut self.sends[send];
        s.completion = Some(op.index);
        s.outcome = outcome;
    }

    fn complete_poll(&mut self, op: &Op) {
        if let (Some(partition), Some(start)) = (op.partition, op.log_start) {
            let known = self.log_start.entry(partition).or_insert(start);
            *known = (*known).max(start);
        }
        if op.kind == OpKind::Info {
            // The poll may have moved the consumer: forget where it was on every partition.
            let tracked: Vec<(u64, u32)> = self
                .consumer_steps
                .range((op.process, 0)..=(op.process, u32::MAX))
                .map(|(&k, _)| k)
                .collect();
            for k in tracked {
                if let Some(steps) = self.consumer_steps.get_mut(&k) {
                    steps.push(ConsumerStep::Reset {
                        last: None,
                        assign: op.index,
                    });
                }
            }
        }
        if op.kind != OpKind::Ok {
            return;
        }
        for read in &op.reads {
            self.known_offsets
                .entry(read.partition)
                .or_default()
                .insert(read.offset);
            self.first_read
                .entry((read.key, read.value))
                .or_insert(op.index);
            self.consumer_steps
                .entry((op.process, read.partition))
                .or_default()
                .push(ConsumerStep::Read {
                    offset: read.offset,
                    poll: op.index,
                });
        }
        self.polls.push(Poll {
            op: op.index,
            reads: op.reads.clone(),
        });
    }

    fn complete_assign(&mut self, invoke: &Op, op: &Op) {
        let (positions, known) = match op.kind {
            OpKind::Ok => (op.positions.as_ref().or(invoke.positions.as_ref()), true),
            // The consumer may or may not have moved: forget where it was.
            OpKind::Info => (invoke.positions.as_ref().or(op.positions.as_ref()), false),
            OpKind::Fail | OpKind::Invoke => return,
        };
        for &(partition, position) in positions.into_iter().flatten() {
            let last = known.then(|| position - 1);
            self.consumer_steps
                .entry((op.process, partition))
                .or_default()
                .push(ConsumerStep::Reset {
                    last,
                    assign: op.index,
                });
        }
    }
}

//! Histories generated from a model log are valid; one injected anomaly is always found.
//!
//! The model: per partition a log of (key, value). Producers send one record at a time and the
//! record is appended when the send completes `ok` (or `info`, sometimes); consumers poll a few
//! records of some partitions from their positions, sometimes restart at a new position, and
//! sometimes see a poll end `info` (after which they may or may not have moved). A nemesis opens
//! and heals faults. The run ends with every open op completed and a full drain.

use std::collections::HashMap;

use cairn_jepsen::{check, AnomalyKind, History, HistoryBuilder, Op, OpF, OpKind};
use proptest::prelude::*;

const DRAIN: u64 = 1999;

#[derive(Debug, Clone, Copy)]
enum Outcome {
    Ok,
    Fail,
    InfoWritten,
    InfoLost,
}

/// What the model did, besides the history.
#[derive(Default)]
struct Facts {
    log: Vec<Vec<(u32, u64)>>,
    failed: Vec<(u32, u64)>,
    sends_ok: u64,
}

struct Sim {
    b: HistoryBuilder,
    facts: Facts,
    producers: Vec<Option<(u32, u64)>>,
    consumers: Vec<Consumer>,
    next_value: u64,
    fault: Option<String>,
    faults_started: u64,
}

#[derive(Clone, Default)]
struct Consumer {
    positions: Vec<i64>,
    pending: Option<Pending>,
}

#[derive(Clone)]
enum Pending {
    Poll,
    Assign(Vec<(u32, i64)>),
}

impl Sim {
    fn new(partitions: usize, producers: usize, consumers: usize) -> Sim {
        let mut b = HistoryBuilder::new();
        b.step_us(997);
        Sim {
            b,
            facts: Facts {
                log: vec![Vec::new(); partitions],
                ..Facts::default()
            },
            producers: vec![None; producers],
            consumers: vec![
                Consumer {
                    positions: vec![0; partitions],
                    pending: None
                };
                consumers
            ],
            next_value: 0,
            fault: None,
            faults_started: 0,
        }
    }

    fn partitions(&self) -> usize {
        self.facts.log.len()
    }

    fn step(&mut self, (a, x, y): (u8, u8, u8)) {
        let actors = self.producers.len() + self.consumers.len() + 1;
        let actor = a as usize % actors;
        if actor < self.producers.len() {
            self.producer(actor, x, y);
        } else if actor < actors - 1 {
            self.consumer(actor - self.producers.len(), x, y);
        } else {
            self.nemesis();
        }
    }

    fn producer(&mut self, i: usize, x: u8, y: u8) {
        let process = i as u64;
        match self.producers[i].take() {
            None => {
                let key = (x as usize % self.partitions()) as u32;
                self.next_value += 1;
                self.b.invoke_send(process, key, self.next_value);
                self.producers[i] = Some((key, self.next_value));
            }
            Some((key, value)) => {
                let outcome = match y % 10 {
                    0..=6 => Outcome::Ok,
                    7 => Outcome::Fail,
                    8 => Outcome::InfoWritten,
                    _ => Outcome::InfoLost,
                };
                self.complete_send(process, key, value, outcome);
            }
        }
    }

    fn complete_send(&mut self, process: u64, key: u32, value: u64, outcome: Outcome) {
        let log = &mut self.facts.log[key as usize];
        match outcome {
            Outcome::Ok => {
                log.push((key, value));
                self.facts.sends_ok += 1;
                let offset = log.len() as i64 - 1;
                self.b
                    .complete_send(process, OpKind::Ok, key, value, Some(offset));
            }
            Outcome::Fail => {
                self.facts.failed.push((key, value));
                self.b
                    .complete_send(process, OpKind::Fail, key, value, None);
            }
            Outcome::InfoWritten => {
                log.push((key, value));
                self.b
                    .complete_send(process, OpKind::Info, key, value, None);
            }
            Outcome::InfoLost => {
                self.b
                    .complete_send(process, OpKind::Info, key, value, None);
            }
        }
    }

    fn consumer(&mut self, j: usize, x: u8, y: u8) {
        let process = 1000 + j as u64;
        match self.consumers[j].pending.take() {
            None if x.is_multiple_of(6) => {
                // Restart some partitions at the start, where it was, or the end of the log.
                let positions: Vec<(u32, i64)> = (0..self.partitions())
                    .filter(|p| (y >> (p % 8)) & 1 == 1)
                    .map(|p| {
                        let here = self.consumers[j].positions[p];
                        let position = match (x / 6) % 3 {
                            0 => 0,
                            1 => here,
                            _ => self.facts.log[p].len() as i64,
                        };
                        (p as u32, position)
                    })
                    .collect();
                let mut op = Op::new(0, 0, process, OpKind::Invoke, OpF::Assign);
                op.positions = Some(positions.clone());
                self.b.push(op);
                self.consumers[j].pending = Some(Pending::Assign(positions));
            }
            None => {
                self.b.invoke_poll(process);
                self.consumers[j].pending = Some(Pending::Poll);
            }
            Some(Pending::Assign(positions)) => {
                let mut op = Op::new(0, 0, process, OpKind::Ok, OpF::Assign);
                if y.is_multiple_of(7) {
                    op.kind = OpKind::Info;
                } else {
                    op.positions = Some(positions.clone());
                }
                self.b.push(op);
                for (p, position) in positions {
                    self.consumers[j].positions[p as usize] = position;
                }
            }
            Some(Pending::Poll) => {
                let kind = match y % 8 {
                    0 => OpKind::Fail,
                    1 => OpKind::Info,
                    _ => OpKind::Ok,
                };
                // Partial: some partitions, up to three records each.
                let reads = self.read(j, x, (y / 8) % 4, kind != OpKind::Fail);
                let reads = if kind == OpKind::Ok {
                    reads
                } else {
                    Vec::new()
                };
                self.b.complete_poll(process, kind, &reads);
            }
        }
    }

    /// Reads from consumer `j`'s positions, moving them if `advance`.
    fn read(&mut self, j: usize, mask: u8, max: u8, advance: bool) -> Vec<(u32, i64, u32, u64)> {
        let mut reads = Vec::new();
        for p in 0..self.partitions() {
            if (mask >> (p % 8)) & 1 == 0 {
                continue;
            }
            let position = &mut self.consumers[j].positions[p];
            let log = &self.facts.log[p];
            let end = (*position + max as i64).min(log.len() as i64);
            for offset in *position..end {
                let (key, value) = log[offset as usize];
                reads.push((p as u32, offset, key, value));
            }
            if advance {
                *position = end.max(*position);
            }
        }
        reads
    }

    fn nemesis(&mut self) {
        match self.fault.take() {
            None => {
                self.faults_started += 1;
                let name = format!("kill node {}", self.faults_started % 3 + 1);
                self.b.fault(&name);
                self.fault = Some(name);
            }
            Some(name) => {
                self.b.heal(&name);
            }
        }
    }

    /// Completes every open op, heals, and drains every partition from offset 0.
    fn finish(mut self) -> (History, Facts) {
        for i in 0..self.producers.len() {
            if let Some((key, value)) = self.producers[i].take() {
                self.complete_send(i as u64, key, value, Outcome::Ok);
            }
        }
        for j in 0..self.consumers.len() {
            let process = 1000 + j as u64;
            match self.consumers[j].pending.take() {
                Some(Pending::Poll) => {
                    self.b.complete_poll(process, OpKind::Info, &[]);
                }
                Some(Pending::Assign(positions)) => {
                    let mut op = Op::new(0, 0, process, OpKind::Fail, OpF::Assign);
                    op.positions = Some(positions);
                    self.b.push(op);
                }
                None => {}
            }
        }
        if let Some(name) = self.fault.take() {
            self.b.heal(&name);
        }
        let all: Vec<(u32, i64)> = (0..self.partitions() as u32).map(|p| (p, 0)).collect();
        self.b.assign(DRAIN, &all);
        let mut reads = Vec::new();
        for (p, log) in self.facts.log.iter().enumerate() {
            for (offset, &(key, value)) in log.iter().enumerate() {
                reads.push((p as u32, offset as i64, key, value));
            }
        }
        // In polls of at most 5 records.
        for chunk in reads.chunks(5) {
            self.b.poll(DRAIN, chunk);
        }
        (self.b.build(), self.facts)
    }
}

fn generate(
    partitions: usize,
    producers: usize,
    consumers: usize,
    steps: &[(u8, u8, u8)],
) -> (History, Facts) {
    let mut sim = Sim::new(partitions, producers, consumers);
    for &step in steps {
        sim.step(step);
    }
    sim.finish()
}

/// Appends or edits ops so that the history shows one anomaly of `kind`; None if this history
/// has nothing to build that anomaly from.
fn inject(history: History, facts: &Facts, kind: AnomalyKind) -> Option<History> {
    let longest = (0..facts.log.len()).max_by_key(|&p| facts.log[p].len())?;
    let log = &facts.log[longest];
    let p = longest as u32;
    let end = log.len() as i64;
    let mut b = HistoryBuilder::from_history(history);
    match kind {
        AnomalyKind::LostWrite => {
            // Drop every read of an acked record that is not the last of its partition.
            let acked: Vec<(u32, u64, i64)> = acked_sends(&b)
                .into_iter()
                .filter(|&(_, _, o)| o + 1 < end)
                .collect();
            let &(key, value, _) = acked.iter().find(|&&(k, _, _)| k == p)?;
            let mut history = b.build();
            for op in &mut history.ops {
                op.reads.retain(|r| (r.key, r.value) != (key, value));
            }
            return Some(history);
        }
        AnomalyKind::Unseen => {
            b.send_ok(500, p, 1_000_000, end + 5);
        }
        AnomalyKind::Duplicate => {
            let &(key, value) = log.first()?;
            b.poll(1500, &[(p, end, key, value)]);
        }
        AnomalyKind::InconsistentOffsets => {
            if log.is_empty() {
                return None;
            }
            b.send_info(500, p, 1_000_000);
            b.poll(1500, &[(p, 0, p, 1_000_000)]);
        }
        AnomalyKind::NonmonotonicPoll => {
            let &(key, value) = log.first()?;
            b.poll(1500, &[(p, 0, key, value)]);
            b.poll(1500, &[(p, 0, key, value)]);
        }
        AnomalyKind::IntNonmonotonicPoll => {
            let &(key, value) = log.first()?;
            b.poll(1500, &[(p, 0, key, value), (p, 0, key, value)]);
        }
        AnomalyKind::PollSkip => {
            if log.len() < 3 {
                return None;
            }
            b.poll(
                1500,
                &[(p, 0, log[0].0, log[0].1), (p, 2, log[2].0, log[2].1)],
            );
        }
        AnomalyKind::NonmonotonicSend => {
            b.send_ok(500, p, 1_000_000, end + 1);
            b.send_ok(500, p, 1_000_001, end);
        }
        AnomalyKind::AbortedRead => {
            let &(key, value) = facts.failed.first()?;
            b.poll(
                1500,
                &[(key, facts.log[key as usize].len() as i64, key, value)],
            );
        }
        AnomalyKind::PhantomRead => {
            b.poll(1500, &[(p, end, p, 2_000_000)]);
        }
        AnomalyKind::MalformedHistory => {
            b.push(Op::new(0, 0, 1500, OpKind::Ok, OpF::Poll));
        }
        // Classes of the compaction and group workloads, checked by their own checkers.
        AnomalyKind::Resurrected
        | AnomalyKind::WrongFinalValue
        | AnomalyKind::ReplicaDivergence
        | AnomalyKind::OffsetRegression => return None,
    }
    Some(b.build())
}

/// (key, value, offset) of every send that completed ok.
fn acked_sends(b: &HistoryBuilder) -> Vec<(u32, u64, i64)> {
    let history = b.clone().build();
    history
        .ops
        .iter()
        .filter(|op| op.f == OpF::Send && op.kind == OpKind::Ok)
        .filter_map(|op| Some((op.key?, op.value?, op.offset?)))
        .collect()
}

fn steps() -> impl Strategy<Value = Vec<(u8, u8, u8)>> {
    proptest::collection::vec(any::<(u8, u8, u8)>(), 0..400)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn model_histories_are_valid(
        partitions in 1usize..4,
        producers in 1usize..4,
        consumers in 1usize..4,
        steps in steps(),
    ) {
        let (history, facts) = generate(partitions, producers, consumers, &steps);
        let result = check(&history);
        prop_assert!(result.valid, "{:#?}", result.anomalies);
        prop_assert_eq!(result.counts.sends_ok, facts.sends_ok);
        let written: usize = facts.log.iter().map(Vec::len).sum();
        prop_assert_eq!(result.counts.distinct_values_read, written as u64);
        // The history survives the file format.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        history.write_jsonl(&path).unwrap();
        prop_assert_eq!(History::read_jsonl(&path).unwrap(), history);
    }

    #[test]
    fn one_injected_anomaly_is_found(
        partitions in 1usize..4,
        producers in 1usize..4,
        consumers in 1usize..4,
        steps in steps(),
        which in 0usize..AnomalyKind::QUEUE.len(),
    ) {
        let (history, facts) = generate(partitions, producers, consumers, &steps);
        let kind = AnomalyKind::QUEUE[which];
        if let Some(bad) = inject(history, &facts, kind) {
            let result = check(&bad);
            prop_assert!(!result.valid);
            prop_assert!(result.count(kind) > 0, "{kind} not found in {:#?}", result.anomalies);
        }
    }
}

#[test]
fn every_injection_applies_to_a_busy_history() {
    // A fixed busy run where every injection has material, so none is silently skipped.
    let steps: Vec<(u8, u8, u8)> = (0..600u32)
        .map(|i| {
            (
                (i * 7 % 251) as u8,
                (i * 13 % 253) as u8,
                (i * 31 % 241) as u8,
            )
        })
        .collect();
    let (history, facts) = generate(2, 2, 2, &steps);
    assert!(!facts.failed.is_empty());
    let counts: HashMap<AnomalyKind, usize> = AnomalyKind::QUEUE
        .iter()
        .map(|&kind| {
            let bad = inject(history.clone(), &facts, kind)
                .unwrap_or_else(|| panic!("{kind} not injected"));
            (kind, check(&bad).count(kind))
        })
        .collect();
    for (kind, n) in counts {
        assert!(n > 0, "{kind} not found");
    }
}

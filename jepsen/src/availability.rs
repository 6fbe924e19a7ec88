//! Availability: how long each partition went without an acknowledged write, per fault and over
//! the whole run, and whether the cluster made progress again after the last heal (liveness).
//!
//! ```text
//!  partition 0   ok ok ok ok . . . . . . . . ok ok ok . . ok ok
//!  fault              [=== kill node 2 ======]
//!                     |<- unavailable ->|
//!                     start             first ok send completed after the start
//! ```
//!
//! Times are completion times of `ok` ops. A partition is every key some send was invoked on.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::history::{History, OpF, OpKind};

/// One fault: from the nemesis' invoke to its heal.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FaultWindow {
    pub name: String,
    pub start_us: u64,
    /// None if the fault was never healed.
    pub end_us: Option<u64>,
    /// History index of the fault's invoke.
    pub invoke: u64,
    /// History index of the heal.
    pub heal: Option<u64>,
}

/// Send completion times of one partition, each list ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SendTimeline {
    pub ok_us: Vec<u64>,
    pub fail_us: Vec<u64>,
    pub info_us: Vec<u64>,
}

/// How long one partition waited for an acknowledged write after a fault started.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PartitionUnavailability {
    pub partition: u32,
    /// Fault start to the first ok send completed after it; to the end of the history if none.
    pub unavailable_us: u64,
    /// Whether an ok send came at all.
    pub recovered: bool,
}

/// Unavailability caused by one fault, across partitions.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FaultAvailability {
    pub fault: FaultWindow,
    pub partitions: Vec<PartitionUnavailability>,
    pub max_unavailable_us: u64,
    /// Lower median across partitions.
    pub median_unavailable_us: u64,
    pub all_recovered: bool,
}

/// The longest time between two consecutive acknowledged writes of a partition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WriteGap {
    pub partition: u32,
    pub gap_us: u64,
    pub from_us: u64,
    pub to_us: u64,
}

/// Progress after the last heal, per partition.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PartitionLiveness {
    pub partition: u32,
    /// From the last heal to the first ok send on this partition completed after it.
    pub first_ok_send_us: Option<u64>,
    /// From the last heal to the first ok poll after it that returned a record of this partition.
    pub first_read_us: Option<u64>,
}

/// Did the cluster recover once every fault was healed?
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// The last heal; None when the run had no healed fault (then delays count from time 0).
    pub last_heal_us: Option<u64>,
    /// From the last heal to the first ok poll (of any partition, even an empty one).
    pub first_ok_poll_us: Option<u64>,
    pub partitions: Vec<PartitionLiveness>,
}

impl Liveness {
    /// Every partition got an ok send and a read of it, each within `bound_us` of the last heal.
    pub fn satisfied(&self, bound_us: u64) -> bool {
        let within = |d: Option<u64>| d.is_some_and(|d| d <= bound_us);
        self.partitions
            .iter()
            .all(|p| within(p.first_ok_send_us) && within(p.first_read_us))
    }
}

/// Availability figures of a run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Availability {
    pub end_us: u64,
    pub faults: Vec<FaultAvailability>,
    /// Per partition with at least two ok sends.
    pub longest_write_gaps: Vec<WriteGap>,
    pub liveness: Liveness,
}

impl Availability {
    pub fn from_history(history: &History) -> Availability {
        let timelines = send_timelines(history);
        let end_us = history.end_us();
        let faults = fault_windows(history)
            .into_iter()
            .map(|fault| fault_availability(fault, &timelines, end_us))
            .collect();
        let longest_write_gaps = timelines
            .iter()
            .filter_map(|(&partition, t)| longest_gap(partition, &t.ok_us))
            .collect();
        Availability {
            end_us,
            faults,
            longest_write_gaps,
            liveness: liveness(history, &timelines),
        }
    }
}

/// The fault windows of a history, in start order. Faults are matched to heals by name, first
/// opened first healed.
pub fn fault_windows(history: &History) -> Vec<FaultWindow> {
    let mut windows: Vec<FaultWindow> = Vec::new();
    let mut open: HashMap<&str, Vec<usize>> = HashMap::new();
    for op in history.ops.iter().filter(|op| op.f == OpF::Fault) {
        let Some(name) = op.fault.as_deref() else {
            continue;
        };
        if op.is_invoke() {
            open.entry(name).or_default().push(windows.len());
            windows.push(FaultWindow {
                name: name.to_string(),
                start_us: op.time_us,
                end_us: None,
                invoke: op.index,
                heal: None,
            });
        } else if let Some(queue) = open.get_mut(name) {
            if !queue.is_empty() {
                let w = &mut windows[queue.remove(0)];
                w.end_us = Some(op.time_us);
                w.heal = Some(op.index);
            }
        }
    }
    windows
}

/// Per partition, the completion times of its sends by outcome. A send's partition is its
/// completion's partition, else its key, else its invoke's partition or key; sends that never
/// completed are left out.
pub fn send_timelines(history: &History) -> BTreeMap<u32, SendTimeline> {
    let mut timelines: BTreeMap<u32, SendTimeline> = BTreeMap::new();
    let mut open_key: HashMap<u64, Option<u32>> = HashMap::new();
    for op in history.ops.iter().filter(|op| op.f == OpF::Send) {
        if op.is_invoke() {
            let partition = op.partition.or(op.key);
            open_key.insert(op.process, partition);
            if let Some(partition) = partition {
                timelines.entry(partition).or_default();
            }
            continue;
        }
        let invoked_key = open_key.remove(&op.process).flatten();
        let Some(partition) = op.partition.or(op.key).or(invoked_key) else {
            continue;
        };
        let timeline = timelines.entry(partition).or_default();
        match op.kind {
            OpKind::Ok => timeline.ok_us.push(op.time_us),
            OpKind::Fail => timeline.fail_us.push(op.time_us),
            OpKind::Info => timeline.info_us.push(op.time_us),
            OpKind::Invoke => {}
        }
    }
    for t in timelines.values_mut() {
        t.ok_us.sort_unstable();
        t.fail_us.sort_unstable();
        t.info_us.sort_unstable();
    }
    timelines
}

/// The first time in `sorted` strictly after `after`.
fn first_after(sorted: &[u64], after: u64) -> Option<u64> {
    let at = sorted.partition_point(|&t| t <= after);
    sorted.get(at).copied()
}

fn fault_availability(
    fault: FaultWindow,
    timelines: &BTreeMap<u32, SendTimeline>,
    end_us: u64,
) -> FaultAvailability {
    let partitions: Vec<PartitionUnavailability> = timelines
        .iter()
        .map(
            |(&partition, t)| match first_after(&t.ok_us, fault.start_us) {
                Some(ok) => PartitionUnavailability {
                    partition,
                    unavailable_us: ok - fault.start_us,
                    recovered: true,
                },
                None => PartitionUnavailability {
                    partition,
                    unavailable_us: end_us.saturating_sub(fault.start_us),
                    recovered: false,
                },
            },
        )
        .collect();
    let mut sorted: Vec<u64> = partitions.iter().map(|p| p.unavailable_us).collect();
    sorted.sort_unstable();
    FaultAvailability {
        max_unavailable_us: sorted.last().copied().unwrap_or(0),
        median_unavailable_us: lower_median(&sorted),
        all_recovered: partitions.iter().all(|p| p.recovered),
        fault,
        partitions,
    }
}

/// The lower median of an ascending slice; 0 when empty.
pub(crate) fn lower_median(sorted: &[u64]) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[(sorted.len() - 1) / 2]
}

fn longest_gap(partition: u32, ok_us: &[u64]) -> Option<WriteGap> {
    ok_us
        .windows(2)
        .map(|w| WriteGap {
            partition,
            gap_us: w[1] - w[0],
            from_us: w[0],
            to_us: w[1],
        })
        .reduce(|best, g| if g.gap_us > best.gap_us { g } else { best })
}

fn liveness(history: &History, timelines: &BTreeMap<u32, SendTimeline>) -> Liveness {
    let last_heal_us = fault_windows(history).iter().filter_map(|w| w.end_us).max();
    let from = last_heal_us.unwrap_or(0);
    let mut first_ok_poll_us = None;
    let mut first_read: BTreeMap<u32, u64> = BTreeMap::new();
    for op in &history.ops {
        if op.f != OpF::Poll || op.kind != OpKind::Ok || op.time_us < from {
            continue;
        }
        first_ok_poll_us.get_or_insert(op.time_us - from);
        let partitions: BTreeSet<u32> = op.reads.iter().map(|r| r.partition).collect();
        for partition in partitions {
            first_read.entry(partition).or_insert(op.time_us - from);
        }
    }
    let partitions = timelines
        .iter()
        .map(|(&partition, t)| PartitionLiveness {
            partition,
            first_ok_send_us: t.ok_us.iter().find(|&&ok| ok >= from).map(|ok| ok - from),
            first_read_us: first_read.get(&partition).copied(),
        })
        .collect();
    Liveness {
        last_heal_us,
        first_ok_poll_us,
        partitions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HistoryBuilder;

    /// Partitions 0 and 1 write every 100 ms; a fault at 1 s stops partition 1 until 2.5 s.
    fn history_with_one_fault() -> History {
        let mut b = HistoryBuilder::new();
        b.step_us(0);
        for (value, t) in (0..=4000).step_by(100).enumerate() {
            let value = value as u64;
            b.at_ms(t);
            if t == 1000 {
                b.fault("kill node 2");
            }
            if t == 3000 {
                b.heal("kill node 2");
            }
            b.at_ms(t + 10);
            b.send_ok(0, 0, value, value as i64);
            if !(1000..2500).contains(&t) {
                b.send_ok(1, 1, value, value as i64);
            }
            b.at_ms(t + 20);
            b.poll(1000, &[]);
        }
        b.build()
    }

    #[test]
    fn fault_unavailability_is_start_to_first_ok_after_it() {
        let a = Availability::from_history(&history_with_one_fault());
        assert_eq!(a.faults.len(), 1);
        let f = &a.faults[0];
        assert_eq!(f.fault.name, "kill node 2");
        assert_eq!(
            (f.fault.start_us, f.fault.end_us),
            (1_000_000, Some(3_000_000))
        );
        // Partition 0 kept going: the next ok is 10 ms after the start. Partition 1 resumed at 2510 ms.
        let got: Vec<(u32, u64)> = f
            .partitions
            .iter()
            .map(|p| (p.partition, p.unavailable_us))
            .collect();
        assert_eq!(got, vec![(0, 10_000), (1, 1_510_000)]);
        assert_eq!(f.max_unavailable_us, 1_510_000);
        assert_eq!(f.median_unavailable_us, 10_000);
        assert!(f.all_recovered);
    }

    #[test]
    fn longest_gap_is_between_consecutive_oks() {
        let a = Availability::from_history(&history_with_one_fault());
        let gaps: Vec<(u32, u64, u64)> = a
            .longest_write_gaps
            .iter()
            .map(|g| (g.partition, g.gap_us, g.from_us))
            .collect();
        assert_eq!(gaps, vec![(0, 100_000, 10_000), (1, 1_600_000, 910_000)]);
    }

    #[test]
    fn liveness_counts_from_the_last_heal() {
        let a = Availability::from_history(&history_with_one_fault());
        let l = &a.liveness;
        assert_eq!(l.last_heal_us, Some(3_000_000));
        assert_eq!(l.first_ok_poll_us, Some(20_000));
        let sends: Vec<Option<u64>> = l.partitions.iter().map(|p| p.first_ok_send_us).collect();
        assert_eq!(sends, vec![Some(10_000), Some(10_000)]);
        // The polls read nothing, so no partition was read after the heal.
        assert!(l.partitions.iter().all(|p| p.first_read_us.is_none()));
        assert!(!l.satisfied(1_000_000));
    }

    #[test]
    fn liveness_satisfied_when_sends_and_reads_resume_in_time() {
        let mut b = HistoryBuilder::new();
        b.fault("partition [1] | [2,3]");
        b.at_ms(500);
        b.heal("partition [1] | [2,3]");
        b.at_ms(1500);
        b.send_ok(0, 0, 1, 0);
        b.at_ms(1800);
        b.poll(1000, &[(0, 0, 0, 1)]);
        let a = Availability::from_history(&b.build());
        let p = &a.liveness.partitions[0];
        assert_eq!(p.first_ok_send_us, Some(1_001_000));
        assert_eq!(p.first_read_us, Some(1_301_000));
        assert!(a.liveness.satisfied(1_301_000));
        assert!(!a.liveness.satisfied(1_300_999));
    }

    #[test]
    fn unhealed_fault_with_no_recovery_runs_to_the_end() {
        let mut b = HistoryBuilder::new();
        b.send_ok(0, 0, 1, 0);
        b.send_ok(0, 3, 2, 0);
        b.at_ms(100);
        b.fault("pause node 1");
        b.at_ms(200);
        b.send_ok(0, 0, 3, 1);
        b.at_ms(900);
        b.send_info(0, 3, 4);
        let a = Availability::from_history(&b.build());
        let f = &a.faults[0];
        assert_eq!(f.fault.end_us, None);
        let got: Vec<(u32, u64, bool)> = f
            .partitions
            .iter()
            .map(|p| (p.partition, p.unavailable_us, p.recovered))
            .collect();
        assert_eq!(got, vec![(0, 101_000, true), (3, 801_000, false)]);
        assert!(!f.all_recovered);
        assert_eq!(f.max_unavailable_us, 801_000);
        assert_eq!(f.median_unavailable_us, 101_000);
    }

    #[test]
    fn overlapping_faults_pair_heals_by_name() {
        let mut b = HistoryBuilder::new();
        b.fault("kill node 1");
        b.fault("partition [2] | [1,3]");
        b.heal("partition [2] | [1,3]");
        b.heal("kill node 1");
        let w = fault_windows(&b.build());
        let got: Vec<(&str, u64, Option<u64>)> = w
            .iter()
            .map(|w| (w.name.as_str(), w.invoke, w.heal))
            .collect();
        assert_eq!(
            got,
            vec![
                ("kill node 1", 0, Some(3)),
                ("partition [2] | [1,3]", 1, Some(2))
            ]
        );
    }
}

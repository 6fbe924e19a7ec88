//! The DR drill's checker and report: what one repetition saw (every
//! acknowledged record, every consumed record, region B's final log) in,
//! RPO, RTO, duplicates and the problems found out. Pure; the drill that
//! gathers the observations is `runner::dr`.
//!
//! Records are named `p{producer}-{seq}` (the value's first bytes), unique
//! over a run: a record found twice in B's log is a duplicate unless its
//! producer resent it after an unknown outcome (then it is counted).

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;
use serde::Serialize;

/// A record acknowledged to a producer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub id: String,
    pub partition: u32,
    pub offset: u64,
    /// Milliseconds since the drill started.
    pub at_ms: u64,
}

/// A record a consumer of the group received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumed {
    pub id: String,
    pub partition: u32,
    pub offset: u64,
    pub at_ms: u64,
    /// Which consumer (client and group member) read it: the drill starts
    /// a new one whenever the last one fails.
    #[serde(default)]
    pub consumer: u32,
}

/// One record of region B's log, read after the drill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    pub id: String,
    pub partition: u32,
    pub offset: u64,
}

/// What one repetition observed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Observation {
    pub rep: u32,
    pub seed: u64,
    /// `auto` (the drill promotes B as soon as it sees A gone) or
    /// `operator` (`cairn mirror promote` run by the drill, as an operator).
    pub promotion: String,
    pub rtt_ms: u64,
    /// When the kill -9 of every node of A was sent, and when all were gone.
    pub kill_ms: u64,
    pub dead_ms: u64,
    /// When the drill saw A gone, and when B's promotion answered.
    pub detected_ms: Option<u64>,
    pub promoted_ms: Option<u64>,
    pub end_ms: u64,
    pub acks: Vec<Ack>,
    /// Records a producer sent again after an outcome it could not know.
    pub resent: BTreeSet<String>,
    pub consumed: Vec<Consumed>,
    /// When each consumer was started (index: `Consumed::consumer`). One
    /// started after A was gone read B only; one started before read A, and
    /// maybe B after (its client follows the bootstrap list).
    pub consumers_started_ms: Vec<u64>,
    /// Region B's whole log, after the drill.
    pub final_log: Vec<LogRecord>,
    /// The group's committed offsets in B when A was lost (the last ones
    /// mirrored), by partition.
    pub mirrored_commits: BTreeMap<u32, u64>,
    /// `cairn mirror status` just before the loss: lag in records and ms.
    pub lag_records_at_loss: u64,
    pub lag_ms_at_loss: u64,
    /// Bytes of records acknowledged before the loss, and over how long.
    pub bytes_before_loss: u64,
    pub produce_start_ms: u64,
}

/// What one repetition measured and found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RepResult {
    pub rep: u32,
    pub seed: u64,
    pub promotion: String,
    pub rtt_ms: u64,
    pub acked: usize,
    pub produce_mb_s: f64,
    /// Acknowledged in A before the loss, missing from B.
    pub rpo_records: usize,
    /// From the first such record's acknowledgement to the loss.
    pub rpo_window_ms: u64,
    pub lag_records_at_loss: u64,
    pub lag_ms_at_loss: u64,
    /// From the kill to the drill seeing A gone, and to B promoted.
    pub detect_ms: Option<u64>,
    pub promote_ms: Option<u64>,
    /// From the kill to the first produce acknowledged by B, and to the
    /// first record consumed from B.
    pub rto_produce_ms: Option<u64>,
    pub rto_consume_ms: Option<u64>,
    /// Records consumed both before and after the failover, and the bound:
    /// what the group consumed in A past its last mirrored commit.
    pub duplicates: usize,
    pub duplicate_bound: usize,
    /// Records in B's log more than once because a producer resent them.
    pub resent_duplicates: usize,
    pub problems: Vec<String>,
    pub valid: bool,
}

fn ms_since(t: u64, from: u64) -> u64 {
    t.saturating_sub(from)
}

/// Checks one repetition.
pub fn analyse(o: &Observation) -> RepResult {
    let mut problems = Vec::new();
    // B's log: where each record is, and duplicates.
    let mut in_b: BTreeMap<&str, Vec<(u32, u64)>> = BTreeMap::new();
    for r in &o.final_log {
        in_b.entry(&r.id).or_default().push((r.partition, r.offset));
    }
    let mut resent_duplicates = 0;
    for (id, at) in &in_b {
        if at.len() > 1 {
            if o.resent.contains(*id) {
                resent_duplicates += at.len() - 1;
            } else {
                problems.push(format!("{id} is in B's log {} times: {at:?}", at.len()));
            }
        }
    }
    // Acknowledged records: lost ones (RPO), and every one acknowledged
    // after the loss exactly where its acknowledgement said.
    let mut lost_first: Option<u64> = None;
    let mut rpo_records = 0;
    for a in &o.acks {
        let found = in_b.get(a.id.as_str());
        if a.at_ms < o.dead_ms {
            if found.is_none() {
                rpo_records += 1;
                lost_first = Some(lost_first.map_or(a.at_ms, |f| f.min(a.at_ms)));
            } else if let Some(at) = found {
                if !o.resent.contains(&a.id) && !at.contains(&(a.partition, a.offset)) {
                    problems.push(format!(
                        "{} was acknowledged at {}/{} in A but is at {at:?} in B (offsets not preserved)",
                        a.id, a.partition, a.offset
                    ));
                }
            }
        } else if !found.is_some_and(|at| at.contains(&(a.partition, a.offset))) {
            problems.push(format!(
                "{} acknowledged by B at {}/{} is not there (B has it at {found:?})",
                a.id, a.partition, a.offset
            ));
        }
    }
    // Order: each producer's records follow one another in each partition.
    let mut last_seq: BTreeMap<(u32, &str), (u64, u64)> = BTreeMap::new();
    let mut log = o.final_log.clone();
    log.sort_by_key(|r| (r.partition, r.offset));
    for r in &log {
        if o.resent.contains(&r.id) {
            continue;
        }
        let Some((producer, seq)) = split_id(&r.id) else {
            problems.push(format!("unknown record {:?} in B's log", r.id));
            continue;
        };
        if let Some((prev, at)) = last_seq.insert((r.partition, producer), (seq, r.offset)) {
            if seq <= prev {
                problems.push(format!(
                    "partition {}: {} at offset {} follows {producer}-{prev} at {at} (out of order)",
                    r.partition, r.id, r.offset
                ));
            }
        }
    }
    // The consumers started after the loss read B only ("after"); those
    // started before read A (and maybe B, at their own positions).
    let started_after = |c: &Consumed| {
        o.consumers_started_ms
            .get(c.consumer as usize)
            .map_or(c.at_ms >= o.dead_ms, |t| *t >= o.dead_ms)
    };
    let (after, before): (Vec<&Consumed>, Vec<&Consumed>) =
        o.consumed.iter().partition(|c| started_after(c));
    let mut resume: BTreeMap<u32, u64> = BTreeMap::new();
    let mut b_read: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for c in &after {
        resume.entry(c.partition).or_insert(c.offset);
        b_read.entry(c.partition).or_default().push(c.offset);
    }
    let by_offset: BTreeMap<(u32, u64), &str> = o
        .final_log
        .iter()
        .map(|r| ((r.partition, r.offset), r.id.as_str()))
        .collect();
    let a_read: BTreeSet<(u32, u64)> = before.iter().map(|c| (c.partition, c.offset)).collect();
    for (p, offsets) in &b_read {
        if offsets.windows(2).any(|w| w[1] <= w[0]) {
            problems.push(format!(
                "partition {p}: the group read B out of order or twice"
            ));
        }
    }
    let partitions: BTreeSet<u32> = o.final_log.iter().map(|r| r.partition).collect();
    for p in &partitions {
        let start = resume.get(p).copied();
        let read: BTreeSet<u64> = b_read.get(p).into_iter().flatten().copied().collect();
        for ((_, offset), id) in by_offset.range((*p, 0)..(*p, u64::MAX)) {
            let read_in_b = read.contains(offset);
            let read_in_a = a_read.contains(&(*p, *offset))
                && before
                    .iter()
                    .any(|c| c.partition == *p && c.offset == *offset && c.id == *id);
            if !read_in_b && !read_in_a {
                problems.push(format!(
                    "partition {p}: the group never read {id} at offset {offset} (B resumed at {start:?})"
                ));
                break;
            }
        }
    }
    let ids_before: BTreeSet<&str> = before.iter().map(|c| c.id.as_str()).collect();
    let duplicates = after
        .iter()
        .filter(|c| ids_before.contains(c.id.as_str()))
        .count();
    let mut last_a: BTreeMap<u32, u64> = BTreeMap::new();
    for c in &before {
        let e = last_a.entry(c.partition).or_insert(c.offset);
        *e = (*e).max(c.offset);
    }
    let duplicate_bound: usize = last_a
        .iter()
        .map(|(p, last)| {
            let committed = o.mirrored_commits.get(p).copied().unwrap_or(0);
            (last + 1).saturating_sub(committed) as usize
        })
        .sum();
    if duplicates > duplicate_bound {
        problems.push(format!(
            "{duplicates} records read again after the failover, more than the {duplicate_bound} read in A past the last mirrored commit"
        ));
    }
    let first_after = |t: &mut dyn Iterator<Item = u64>| t.filter(|t| *t >= o.dead_ms).min();
    let rto_produce_ms =
        first_after(&mut o.acks.iter().map(|a| a.at_ms)).map(|t| ms_since(t, o.kill_ms));
    let rto_consume_ms = after
        .iter()
        .map(|c| c.at_ms)
        .min()
        .map(|t| ms_since(t, o.kill_ms));
    if rto_produce_ms.is_none() {
        problems.push("no produce was acknowledged by B".into());
    }
    if rto_consume_ms.is_none() {
        problems.push("nothing was consumed from B".into());
    }
    let secs = ms_since(o.dead_ms, o.produce_start_ms).max(1) as f64 / 1000.0;
    let valid = problems.is_empty();
    RepResult {
        rep: o.rep,
        seed: o.seed,
        promotion: o.promotion.clone(),
        rtt_ms: o.rtt_ms,
        acked: o.acks.len(),
        produce_mb_s: o.bytes_before_loss as f64 / secs / 1e6,
        rpo_records,
        rpo_window_ms: lost_first.map_or(0, |f| ms_since(o.kill_ms, f)),
        lag_records_at_loss: o.lag_records_at_loss,
        lag_ms_at_loss: o.lag_ms_at_loss,
        detect_ms: o.detected_ms.map(|t| ms_since(t, o.kill_ms)),
        promote_ms: o.promoted_ms.map(|t| ms_since(t, o.kill_ms)),
        rto_produce_ms,
        rto_consume_ms,
        duplicates,
        duplicate_bound,
        resent_duplicates,
        problems,
        valid,
    }
}

/// Makes `r` invalid if its RPO window or its produce RTO is over a bound
/// (a regression guard, as the isolation run's availability bound).
pub fn apply_bounds(r: &mut RepResult, max_rpo_ms: Option<u64>, max_rto_ms: Option<u64>) {
    if let Some(max) = max_rpo_ms {
        if r.rpo_window_ms > max {
            r.problems.push(format!(
                "RPO window {} ms is over the bound {max} ms ({} records lost)",
                r.rpo_window_ms, r.rpo_records
            ));
        }
    }
    if let Some(max) = max_rto_ms {
        if r.rto_produce_ms.is_none_or(|t| t > max) {
            r.problems.push(format!(
                "RTO (first produce in B) {:?} ms is over the bound {max} ms",
                r.rto_produce_ms
            ));
        }
    }
    r.valid = r.problems.is_empty();
}

/// `p3-17` → (`p3`, 17).
fn split_id(id: &str) -> Option<(&str, u64)> {
    let (p, seq) = id.rsplit_once('-')?;
    Some((p, seq.parse().ok()?))
}

/// Min, median and max of what is there.
fn spread(values: &[Option<u64>]) -> String {
    let mut v: Vec<u64> = values.iter().flatten().copied().collect();
    if v.is_empty() {
        return "-".into();
    }
    v.sort_unstable();
    format!("{} / {} / {}", v[0], v[v.len() / 2], v[v.len() - 1])
}

/// The drill's goals (issue 14): RPO under 1 s of data, RTO under 10 s
/// with automatic promotion.
pub const RPO_GOAL_MS: u64 = 1_000;
pub const RTO_GOAL_MS: u64 = 10_000;

/// The summary over repetitions, as text.
pub fn summary_text(results: &[RepResult], settings: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "Cairn DR drill: {settings}");
    let _ = writeln!(
        s,
        "{:>3} {:>8} {:>6} {:>8} {:>7} {:>7} {:>9} {:>8} {:>8} {:>9} {:>9} {:>10} valid",
        "rep",
        "promote",
        "rtt",
        "acked",
        "MB/s",
        "rpo",
        "rpo ms",
        "detect",
        "promote",
        "rto prod",
        "rto cons",
        "dup/bound"
    );
    for r in results {
        let o = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
        let _ = writeln!(
            s,
            "{:>3} {:>8} {:>6} {:>8} {:>7.2} {:>7} {:>9} {:>8} {:>8} {:>9} {:>9} {:>10} {}",
            r.rep,
            r.promotion,
            r.rtt_ms,
            r.acked,
            r.produce_mb_s,
            r.rpo_records,
            r.rpo_window_ms,
            o(r.detect_ms),
            o(r.promote_ms),
            o(r.rto_produce_ms),
            o(r.rto_consume_ms),
            format!("{}/{}", r.duplicates, r.duplicate_bound),
            if r.valid { "yes" } else { "NO" }
        );
    }
    for mode in ["auto", "operator"] {
        let of: Vec<&RepResult> = results.iter().filter(|r| r.promotion == mode).collect();
        if of.is_empty() {
            continue;
        }
        let col = |f: &dyn Fn(&RepResult) -> Option<u64>| {
            spread(&of.iter().map(|r| f(r)).collect::<Vec<_>>())
        };
        let _ = writeln!(
            s,
            "\n{mode} promotion, {} reps (min / median / max):",
            of.len()
        );
        let _ = writeln!(
            s,
            "  RPO records          {}",
            col(&|r| Some(r.rpo_records as u64))
        );
        let _ = writeln!(
            s,
            "  RPO window ms        {}",
            col(&|r| Some(r.rpo_window_ms))
        );
        let _ = writeln!(
            s,
            "  mirror lag at loss   {} records",
            col(&|r| Some(r.lag_records_at_loss))
        );
        let _ = writeln!(s, "  detect ms            {}", col(&|r| r.detect_ms));
        let _ = writeln!(s, "  promoted ms          {}", col(&|r| r.promote_ms));
        let _ = writeln!(s, "  RTO produce ms       {}", col(&|r| r.rto_produce_ms));
        let _ = writeln!(s, "  RTO consume ms       {}", col(&|r| r.rto_consume_ms));
        let _ = writeln!(
            s,
            "  duplicates read      {}",
            col(&|r| Some(r.duplicates as u64))
        );
        let worst_rpo = of.iter().map(|r| r.rpo_window_ms).max().unwrap_or(0);
        let worst_rto = of
            .iter()
            .filter_map(|r| r.rto_produce_ms)
            .max()
            .unwrap_or(u64::MAX);
        let _ = writeln!(
            s,
            "  goals: RPO < {RPO_GOAL_MS} ms {} (worst {worst_rpo}); RTO < {RTO_GOAL_MS} ms {} (worst {worst_rto})",
            if worst_rpo < RPO_GOAL_MS { "met" } else { "MISSED" },
            if worst_rto < RTO_GOAL_MS { "met" } else { "MISSED" },
        );
    }
    for r in results.iter().filter(|r| !r.valid) {
        let _ = writeln!(s, "\nrep {} problems:", r.rep);
        for p in r.problems.iter().take(20) {
            let _ = writeln!(s, "  - {p}");
        }
    }
    let valid = results.iter().all(|r| r.valid);
    let _ = writeln!(
        s,
        "\n{}",
        if valid {
            "VALID: no acknowledged record lost after the failover, none duplicated, all in order"
        } else {
            "INVALID"
        }
    );
    s
}

/// One repetition's timeline as an SVG: acknowledgements and records
/// consumed per 250 ms, and the kill, detection, promotion and the first
/// produce and consume in B.
pub fn timeline_svg(o: &Observation, r: &RepResult) -> String {
    const BUCKET: u64 = 250;
    let (w, h) = (900.0_f64, 160.0_f64);
    let end = o.end_ms.max(1);
    let buckets = (end / BUCKET + 1) as usize;
    let mut acks = vec![0u32; buckets];
    let mut reads = vec![0u32; buckets];
    for a in &o.acks {
        acks[(a.at_ms / BUCKET) as usize] += 1;
    }
    for c in &o.consumed {
        if let Some(b) = reads.get_mut((c.at_ms / BUCKET) as usize) {
            *b += 1;
        }
    }
    let max = acks.iter().chain(&reads).copied().max().unwrap_or(1).max(1) as f64;
    let x = |t: u64| t as f64 / end as f64 * w;
    let bw = w / buckets as f64;
    let mut s = format!(
        "<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{}' font-family='sans-serif' font-size='11'>",
        h + 30.0
    );
    for (i, n) in acks.iter().enumerate() {
        let bh = f64::from(*n) / max * h;
        let color = if (i as u64 * BUCKET) < o.dead_ms {
            "#4a78c2"
        } else {
            "#3a9a4a"
        };
        let _ = write!(
            s,
            "<rect x='{:.1}' y='{:.1}' width='{:.1}' height='{bh:.1}' fill='{color}' opacity='0.7'/>",
            i as f64 * bw,
            h - bh,
            (bw - 0.5).max(0.5)
        );
    }
    let mut path = String::new();
    for (i, n) in reads.iter().enumerate() {
        let _ = write!(
            path,
            "{}{:.1},{:.1} ",
            if i == 0 { "M" } else { "L" },
            i as f64 * bw + bw / 2.0,
            h - f64::from(*n) / max * h
        );
    }
    let _ = write!(
        s,
        "<path d='{path}' stroke='#d9822b' fill='none' stroke-width='1.5'/>"
    );
    let marks = [
        (Some(o.kill_ms), "#c0392b", "A killed"),
        (o.detected_ms, "#8e44ad", "detected"),
        (o.promoted_ms, "#2c3e50", "promoted"),
        (
            r.rto_produce_ms.map(|d| o.kill_ms + d),
            "#3a9a4a",
            "first produce in B",
        ),
        (
            r.rto_consume_ms.map(|d| o.kill_ms + d),
            "#d9822b",
            "first read in B",
        ),
    ];
    for (i, (t, color, label)) in marks.iter().enumerate() {
        if let Some(t) = t {
            let _ = write!(
                s,
                "<line x1='{0:.1}' x2='{0:.1}' y1='0' y2='{h}' stroke='{color}' stroke-dasharray='3,2'/><text x='{1:.1}' y='{2}' fill='{color}'>{label} {t} ms</text>",
                x(*t),
                (x(*t) + 3.0).min(w - 150.0),
                12 + 12 * i
            );
        }
    }
    let _ = write!(
        s,
        "<text x='0' y='{}'>0 ms</text><text x='{}' y='{}' text-anchor='end'>{end} ms</text></svg>",
        h + 20.0,
        w,
        h + 20.0
    );
    s
}

/// Writes `report.txt`, `report.html` (with each repetition's timeline) and
/// `report.json` to `dir`.
pub fn write_report(
    dir: &Path,
    settings: &str,
    runs: &[(Observation, RepResult)],
) -> std::io::Result<String> {
    let results: Vec<RepResult> = runs.iter().map(|(_, r)| r.clone()).collect();
    let text = summary_text(&results, settings);
    std::fs::write(dir.join("report.txt"), &text)?;
    let json = serde_json::json!({
        "settings": settings,
        "valid": results.iter().all(|r| r.valid),
        "reps": results,
    });
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_vec_pretty(&json).map_err(std::io::Error::other)?,
    )?;
    let mut html = String::from(
        "<!doctype html><meta charset='utf-8'><title>Cairn DR drill</title>\
         <style>body{font-family:sans-serif;margin:2em}pre{background:#f6f6f6;padding:1em}</style>\
         <h1>Cairn DR drill</h1>",
    );
    let _ = write!(html, "<pre>{}</pre>", escape(&text));
    let _ = write!(
        html,
        "<p>Bars: records acknowledged per 250 ms (blue: by A, green: by B); line: records the group read.</p>"
    );
    for (o, r) in runs {
        let _ = write!(
            html,
            "<h2>rep {} ({} promotion, seed {}, {} ms RTT): {}</h2>{}",
            r.rep,
            r.promotion,
            r.seed,
            r.rtt_ms,
            if r.valid { "valid" } else { "INVALID" },
            timeline_svg(o, r)
        );
    }
    std::fs::write(dir.join("report.html"), html)?;
    Ok(text)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(id: &str, p: u32, off: u64, at: u64) -> Ack {
        Ack {
            id: id.into(),
            partition: p,
            offset: off,
            at_ms: at,
        }
    }

    fn rec(id: &str, p: u32, off: u64) -> LogRecord {
        LogRecord {
            id: id.into(),
            partition: p,
            offset: off,
        }
    }

    /// Read at `at` by the consumer of that time: 0 before the loss, 1
    /// (started at 2400) after.
    fn read(id: &str, p: u32, off: u64, at: u64) -> Consumed {
        Consumed {
            id: id.into(),
            partition: p,
            offset: off,
            at_ms: at,
            consumer: u32::from(at >= 2400),
        }
    }

    /// A, then the loss at 1000 ms: p0-2 was acknowledged in A but never
    /// mirrored; B took p0-3 at the same offset after the promotion. The
    /// group had committed offset 1 in B, read p0-1 in A and again in B.
    fn drill() -> Observation {
        Observation {
            promotion: "auto".into(),
            kill_ms: 1000,
            dead_ms: 1010,
            detected_ms: Some(2000),
            promoted_ms: Some(2100),
            end_ms: 5000,
            acks: vec![
                ack("p0-0", 0, 0, 100),
                ack("p0-1", 0, 1, 500),
                ack("p0-2", 0, 2, 900),
                ack("p0-3", 0, 2, 2300),
            ],
            final_log: vec![rec("p0-0", 0, 0), rec("p0-1", 0, 1), rec("p0-3", 0, 2)],
            consumed: vec![
                read("p0-0", 0, 0, 200),
                read("p0-1", 0, 1, 600),
                read("p0-1", 0, 1, 2500),
                read("p0-3", 0, 2, 2600),
            ],
            mirrored_commits: [(0, 1)].into(),
            consumers_started_ms: vec![0, 2400],
            ..Observation::default()
        }
    }

    #[test]
    fn a_clean_failover_measures_rpo_rto_and_duplicates() {
        let r = analyse(&drill());
        assert!(r.valid, "{:?}", r.problems);
        assert_eq!(r.rpo_records, 1);
        assert_eq!(r.rpo_window_ms, 100);
        assert_eq!(r.rto_produce_ms, Some(1300));
        assert_eq!(r.rto_consume_ms, Some(1500));
        assert_eq!((r.duplicates, r.duplicate_bound), (1, 1));
        assert_eq!(r.detect_ms, Some(1000));
    }

    #[test]
    fn a_record_acknowledged_by_b_and_missing_is_found() {
        let mut o = drill();
        o.final_log.pop();
        let r = analyse(&o);
        assert!(!r.valid);
        assert!(r
            .problems
            .iter()
            .any(|p| p.contains("p0-3 acknowledged by B")));
    }

    #[test]
    fn a_duplicate_or_a_reordering_in_b_is_found() {
        let mut o = drill();
        o.final_log.push(rec("p0-1", 0, 3));
        let r = analyse(&o);
        assert!(r.problems.iter().any(|p| p.contains("2 times")), "{r:?}");
        assert!(
            r.problems.iter().any(|p| p.contains("out of order")),
            "{r:?}"
        );
        // A resent record is counted, not blamed.
        o.resent.insert("p0-1".into());
        let r = analyse(&o);
        assert_eq!(r.resent_duplicates, 1);
        assert!(!r.problems.iter().any(|p| p.contains("2 times")));
    }

    #[test]
    fn a_group_skipping_records_or_rereading_too_many_is_found() {
        let mut o = drill();
        // Resumed past p0-3: never read.
        o.consumed.pop();
        o.consumed.push(read("p0-x", 0, 3, 2600));
        let r = analyse(&o);
        assert!(
            r.problems.iter().any(|p| p.contains("never read p0-3")),
            "{r:?}"
        );
        // The mirrored commit was at 2: one re-read is more than the bound 0.
        let mut o = drill();
        o.mirrored_commits.insert(0, 2);
        let r = analyse(&o);
        assert!(r.problems.iter().any(|p| p.contains("read again")), "{r:?}");
        // The first consumer, still running after the loss, read p0-2 from
        // A at 1015 (in flight) and p0-3 from B: not B's consumer's reads.
        let mut o = drill();
        o.consumed.insert(2, read("p0-2", 0, 2, 1015));
        o.consumed.insert(3, read("p0-3", 0, 2, 2350));
        let r = analyse(&o);
        assert!(r.valid, "{:?}", r.problems);
        assert_eq!(r.rto_consume_ms, Some(1500));
    }

    #[test]
    fn bounds_make_a_slow_failover_invalid() {
        let mut r = analyse(&drill());
        apply_bounds(&mut r, Some(100), Some(1300));
        assert!(r.valid, "{:?}", r.problems);
        apply_bounds(&mut r, Some(99), None);
        assert!(!r.valid);
        let mut r = analyse(&drill());
        apply_bounds(&mut r, None, Some(1299));
        assert!(r.problems.iter().any(|p| p.contains("RTO")), "{r:?}");
    }

    #[test]
    fn the_report_names_the_goals() {
        let r = analyse(&drill());
        let text = summary_text(std::slice::from_ref(&r), "test");
        assert!(text.contains("RPO < 1000 ms met"), "{text}");
        assert!(text.contains("VALID"), "{text}");
        let svg = timeline_svg(&drill(), &r);
        assert!(svg.contains("A killed 1000 ms"));
    }
}

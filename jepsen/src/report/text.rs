//! `report.txt`: the verdict first, then what happened, then the details.

use std::fmt::Write;

use super::{first_per_class, secs, Verdict};

/// How many anomalies of each class the text lists.
const TEXT_ANOMALIES_PER_CLASS: usize = 5;

/// The human summary of a verdict.
pub fn render_text(v: &Verdict) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = write_all(&mut out, v);
    out
}

fn write_all(out: &mut String, v: &Verdict) -> std::fmt::Result {
    let found: Vec<String> = v
        .anomaly_counts
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect();
    let head = if v.valid { "VALID" } else { "INVALID" };
    let anomalies = if found.is_empty() {
        "no anomalies".to_string()
    } else {
        format!("{} anomalies: {}", v.anomalies_total, found.join(", "))
    };
    let liveness = match (v.liveness_ok, v.meta.liveness_bound_ms) {
        (Some(true), Some(b)) => format!("liveness ok (bound {b} ms)"),
        (Some(false), Some(b)) => format!("LIVENESS FAILED (bound {b} ms)"),
        _ => "liveness not judged".to_string(),
    };
    let availability = match (v.availability_ok, v.meta.max_unavailable_ms) {
        (Some(true), Some(b)) => format!("; every fault under {b} ms unavailability"),
        (Some(false), Some(b)) => format!("; AVAILABILITY FAILED: a fault exceeded {b} ms"),
        _ => String::new(),
    };
    writeln!(out, "{head} — {anomalies}; {liveness}{availability}")?;

    let m = &v.meta;
    let nodes: Vec<String> = m.nodes.iter().map(u64::to_string).collect();
    writeln!(
        out,
        "seed {} · nodes {} · time limit {} s · nemesis: {}",
        m.seed,
        nodes.join(","),
        m.time_limit_s,
        if m.nemeses.is_empty() {
            "none".to_string()
        } else {
            m.nemeses.join(", ")
        }
    )?;
    let c = &v.counts;
    writeln!(
        out,
        "{} ops · sends {}: {} ok, {} fail, {} info, {} pending ({} unknown-outcome sends were read)",
        c.ops, c.sends_attempted, c.sends_ok, c.sends_fail, c.sends_info, c.sends_pending, c.sends_unknown_read
    )?;
    writeln!(
        out,
        "polls {} ok, {} not ok · {} records read, {} distinct values · {} faults",
        c.polls_ok, c.polls_not_ok, c.reads, c.distinct_values_read, c.faults
    )?;
    if c.sends_ok_trimmed_unread > 0 {
        writeln!(
            out,
            "{} ok sends were deleted by retention before any poll read them (not checked)",
            c.sends_ok_trimmed_unread
        )?;
    }

    writeln!(out, "\nanomalies")?;
    for (&kind, &n) in &v.anomaly_counts {
        let mark = if n > 0 { "  <-- " } else { "" };
        writeln!(out, "  {:<22} {n}{mark}", kind.name())?;
    }
    if !v.first_anomalies.is_empty() {
        let shown = first_per_class(&v.first_anomalies, TEXT_ANOMALIES_PER_CLASS);
        writeln!(
            out,
            "\nfirst anomalies, up to {TEXT_ANOMALIES_PER_CLASS} per class (ops are history indexes)"
        )?;
        for a in &shown {
            writeln!(
                out,
                "  {:<22} ops {:?}  {}",
                a.kind.name(),
                a.ops,
                a.description
            )?;
        }
        if v.anomalies_total as usize > shown.len() {
            writeln!(
                out,
                "  … {} more: verdict.json and report.html list up to {} per class",
                v.anomalies_total as usize - shown.len(),
                super::FIRST_ANOMALIES_PER_CLASS
            )?;
        }
    }

    if !v.faults.is_empty() {
        writeln!(
            out,
            "\nfaults: time to the first ok write after the start, across partitions"
        )?;
        for f in &v.faults {
            let end = f.end_us.map_or_else(|| "never healed".to_string(), secs);
            let recovered = if f.all_recovered {
                ""
            } else {
                "  (some partitions never recovered)"
            };
            writeln!(
                out,
                "  {:>9} – {:<12} {:<28} max {}  median {}{recovered}",
                secs(f.start_us),
                end,
                f.name,
                secs(f.max_unavailable_us),
                secs(f.median_unavailable_us)
            )?;
        }
    }

    if !v.longest_write_gaps.is_empty() {
        writeln!(out, "\nlongest gap between ok writes")?;
        for g in &v.longest_write_gaps {
            writeln!(
                out,
                "  p{:<4} {} (from {})",
                g.partition,
                secs(g.gap_us),
                secs(g.from_us)
            )?;
        }
    }

    let l = &v.liveness;
    let from = l.last_heal_us.map_or_else(
        || "the start".to_string(),
        |t| format!("the last heal at {}", secs(t)),
    );
    let poll = l
        .first_ok_poll_us
        .map_or_else(|| "none".to_string(), |d| format!("+{}", secs(d)));
    writeln!(out, "\nliveness after {from}: first ok poll {poll}")?;
    for p in &l.partitions {
        let d = |d: Option<u64>| d.map_or_else(|| "none".to_string(), |d| format!("+{}", secs(d)));
        writeln!(
            out,
            "  p{:<4} first ok send {}, first read {}",
            p.partition,
            d(p.first_ok_send_us),
            d(p.first_read_us)
        )?;
    }

    writeln!(out, "\npartitions: ok sends, highest offset acked / read")?;
    for (partition, p) in &c.partitions {
        let o = |o: Option<i64>| o.map_or_else(|| "-".to_string(), |o| o.to_string());
        writeln!(
            out,
            "  p{partition:<4} {:>7} ok   {} / {}",
            p.sends_ok,
            o(p.highest_acked_offset),
            o(p.highest_read_offset)
        )?;
    }

    if !m.fault_schedule.is_empty() {
        writeln!(out, "\nfault schedule")?;
        for line in &m.fault_schedule {
            writeln!(out, "  {line}")?;
        }
    }
    if !m.notes.is_empty() {
        writeln!(out, "\nnotes")?;
        for line in &m.notes {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}

//! `report.html`: one self-contained page, an inline SVG timeline and the text summary.
//!
//! ```text
//!  fault labels   kill node 2        partition [1] | [2,3]
//!  p0   ▁▁▁▁▁▁▁▁▁▁|░░░░░░░░|▁▁▁▁▁▁▁▁▁▁|░░░░░░░▁▁▁▁▁   ok (blue), info (orange, above), fail (red, below)
//!  p1   ▁▁▁▁▁▁▁▁▁▁|░░░     |▁▁▁▁▁▁▁▁▁▁|░░░░░░░▁▁▁▁▁
//!  s since last ok write   /|  /\    one line per partition
//!  0 s        10 s        20 s
//! ```
//!
//! Sends are counted in buckets of at least 100 ms (more on long runs, at most
//! [`MAX_BUCKETS`] across the run) and runs of non-empty buckets become one rectangle, so the
//! page stays small whatever the history's length.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{render_text, secs, verdict, RunMeta};
use crate::availability::{fault_windows, send_timelines, FaultWindow, SendTimeline};
use crate::checker::CheckResult;
use crate::history::History;

/// Most buckets the time axis is cut into.
const MAX_BUCKETS: u64 = 1_500;
const MIN_BUCKET_US: u64 = 100_000;
const LEFT: f64 = 70.0;
const PLOT_W: f64 = 1_100.0;
const RIGHT: f64 = 30.0;
const LANE_H: f64 = 22.0;
const LABEL_ROW_H: f64 = 15.0;
const LABEL_ROWS_MAX: usize = 8;
const AVAIL_H: f64 = 140.0;
const AXIS_H: f64 = 30.0;
const PALETTE: [&str; 10] = [
    "#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
    "#d62728", "#ff7f0e",
];
const OK_COLOR: &str = "#4a78b5";
const INFO_COLOR: &str = "#f08c00";
const FAIL_COLOR: &str = "#d6336c";
const FAULT_COLOR: &str = "#9c7ce0";

/// The HTML report of a checked history.
pub fn render_html(history: &History, result: &CheckResult, meta: &RunMeta) -> String {
    let v = verdict(result, meta);
    let status = if v.valid { "VALID" } else { "INVALID" };
    let color = if v.valid { "#2b8a3e" } else { "#c92a2a" };
    let svg = timeline_svg(history);
    let mut out = String::with_capacity(svg.len() + 16_384);
    let _ = write!(
        out,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Cairn Jepsen {status} — seed {seed}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;margin:20px;color:#222}}\
         h1{{color:{color}}} pre{{background:#f6f6f6;padding:10px;font-size:13px}}\
         table{{border-collapse:collapse;font-size:13px}} td,th{{border:1px solid #ccc;padding:2px 6px;text-align:left}}\
         .key span{{display:inline-block;width:12px;height:12px;margin:0 4px 0 14px;vertical-align:middle}}</style>\n\
         </head><body>\n<h1>{status}</h1>\n\
         <p class=\"key\"><span style=\"background:{OK_COLOR}\"></span>ok sends\
         <span style=\"background:{INFO_COLOR}\"></span>info (unknown outcome)\
         <span style=\"background:{FAIL_COLOR}\"></span>failed\
         <span style=\"background:{FAULT_COLOR};opacity:.3\"></span>fault window\
         &nbsp;&nbsp;— lower chart: seconds since the partition's last ok write</p>\n{svg}\n\
         <h2>Summary</h2>\n<pre>{summary}</pre>\n",
        seed = v.meta.seed,
        summary = escape(&render_text(&v)),
    );
    if !v.first_anomalies.is_empty() {
        out.push_str(
            "<h2>Anomalies</h2>\n<table><tr><th>class</th><th>ops</th><th>what</th></tr>\n",
        );
        for a in &v.first_anomalies {
            let ops: Vec<String> = a.ops.iter().map(u64::to_string).collect();
            let _ = writeln!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                a.kind.name(),
                ops.join(", "),
                escape(&a.description)
            );
        }
        out.push_str("</table>\n");
        if v.anomalies_total as usize > v.first_anomalies.len() {
            let _ = writeln!(
                out,
                "<p>… and {} more ({} per class are listed).</p>",
                v.anomalies_total as usize - v.first_anomalies.len(),
                super::FIRST_ANOMALIES_PER_CLASS
            );
        }
    }
    out.push_str("</body></html>\n");
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Maps times to x pixels and buckets.
struct Scale {
    end_us: u64,
    bucket_us: u64,
}

impl Scale {
    fn x(&self, t_us: u64) -> f64 {
        LEFT + t_us.min(self.end_us) as f64 / self.end_us as f64 * PLOT_W
    }

    fn buckets(&self) -> u64 {
        self.end_us / self.bucket_us + 1
    }

    fn bucket(&self, t_us: u64) -> u64 {
        t_us.min(self.end_us) / self.bucket_us
    }

    fn bucket_x(&self, b: u64) -> f64 {
        self.x(b * self.bucket_us)
    }
}

fn timeline_svg(history: &History) -> String {
    let end_us = history.end_us().max(1);
    let scale = Scale {
        end_us,
        bucket_us: MIN_BUCKET_US.max(end_us.div_ceil(MAX_BUCKETS)),
    };
    let timelines = send_timelines(history);
    let windows = fault_windows(history);
    let rows = label_rows(&windows, &scale);
    let label_rows = rows.iter().copied().max().map_or(0, |r| r + 1);

    let lanes_y = 8.0 + label_rows as f64 * LABEL_ROW_H + 4.0;
    let avail_y = lanes_y + timelines.len() as f64 * LANE_H + 18.0;
    let axis_y = avail_y + AVAIL_H;
    let width = LEFT + PLOT_W + RIGHT;
    let height = axis_y + AXIS_H;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height:.0}\" \
         font-family=\"system-ui,sans-serif\" font-size=\"11\">"
    );
    axis(&mut s, &scale, lanes_y, axis_y);
    for (lane, (partition, timeline)) in timelines.iter().enumerate() {
        send_lane(
            &mut s,
            &scale,
            lanes_y + lane as f64 * LANE_H,
            *partition,
            timeline,
        );
    }
    availability_lane(&mut s, &scale, avail_y, &timelines);
    for (window, &row) in windows.iter().zip(&rows) {
        fault(
            &mut s,
            &scale,
            window,
            8.0 + row as f64 * LABEL_ROW_H,
            axis_y,
        );
    }
    s.push_str("</svg>");
    s
}

/// A label row per fault so that labels do not overlap (greedy, first row that is free).
fn label_rows(windows: &[FaultWindow], scale: &Scale) -> Vec<usize> {
    let mut row_ends: Vec<f64> = Vec::new();
    windows
        .iter()
        .map(|w| {
            let x0 = scale.x(w.start_us);
            let x1 = scale.x(w.end_us.unwrap_or(scale.end_us));
            let right = x1.max(x0 + 6.5 * w.name.chars().count() as f64 + 8.0);
            let row = match row_ends.iter().position(|&end| end < x0) {
                Some(row) => row,
                None if row_ends.len() < LABEL_ROWS_MAX => {
                    row_ends.push(0.0);
                    row_ends.len() - 1
                }
                None => LABEL_ROWS_MAX - 1,
            };
            row_ends[row] = right;
            row
        })
        .collect()
}

fn axis(s: &mut String, scale: &Scale, top: f64, axis_y: f64) {
    let total_s = scale.end_us as f64 / 1e6;
    let steps = [
        0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
        3600.0,
    ];
    let step = steps
        .iter()
        .copied()
        .find(|step| total_s / step <= 12.0)
        .unwrap_or(7200.0);
    let mut t = 0.0;
    while t <= total_s + 1e-9 {
        let x = scale.x((t * 1e6) as u64);
        let label = if step < 1.0 {
            format!("{t:.1} s")
        } else {
            format!("{t:.0} s")
        };
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{axis_y:.1}\" stroke=\"#e4e4e4\"/>\
             <text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\">{label}</text>",
            axis_y + 14.0
        );
        t += step;
    }
    let _ = writeln!(
        s,
        "<line x1=\"{LEFT}\" y1=\"{axis_y:.1}\" x2=\"{:.1}\" y2=\"{axis_y:.1}\" stroke=\"#888\"/>",
        LEFT + PLOT_W
    );
}

/// Runs of consecutive non-empty buckets, as (first bucket, last bucket, sends in the run).
fn runs(scale: &Scale, times_us: &[u64]) -> Vec<(u64, u64, u64)> {
    let mut runs: Vec<(u64, u64, u64)> = Vec::new();
    for &t in times_us {
        let b = scale.bucket(t);
        match runs.last_mut() {
            Some(run) if b <= run.1 + 1 => {
                run.1 = run.1.max(b);
                run.2 += 1;
            }
            _ => runs.push((b, b, 1)),
        }
    }
    runs
}

fn send_lane(s: &mut String, scale: &Scale, y: f64, partition: u32, t: &SendTimeline) {
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{y:.1}\" width=\"{PLOT_W}\" height=\"{LANE_H}\" fill=\"#fafafa\" stroke=\"#eee\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">p{partition}</text>",
        LEFT - 6.0,
        y + LANE_H / 2.0 + 4.0
    );
    let bands = [
        (&t.info_us, INFO_COLOR, 2.0, "info"),
        (&t.ok_us, OK_COLOR, 8.0, "ok"),
        (&t.fail_us, FAIL_COLOR, 15.0, "fail"),
    ];
    for (times, color, dy, what) in bands {
        for (first, last, n) in runs(scale, times) {
            let x0 = scale.bucket_x(first);
            let w = (scale.bucket_x(last + 1) - x0).max(1.5);
            let _ = writeln!(
                s,
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"5\" fill=\"{color}\">\
                 <title>p{partition}: {n} {what} sends, {} – {}</title></rect>",
                y + dy,
                secs(first * scale.bucket_us),
                secs(((last + 1) * scale.bucket_us).min(scale.end_us))
            );
        }
    }
}

fn availability_lane(
    s: &mut String,
    scale: &Scale,
    y: f64,
    timelines: &BTreeMap<u32, SendTimeline>,
) {
    // Seconds since the last ok write, sampled at each bucket's end.
    let mut lines: Vec<(u32, Vec<(u64, u64)>)> = Vec::new();
    let mut max_stale_us = 1_000_000;
    for (&partition, t) in timelines {
        let mut points = Vec::new();
        let mut next = 0;
        let mut last_ok = None;
        for b in 0..scale.buckets() {
            let at = ((b + 1) * scale.bucket_us).min(scale.end_us);
            while next < t.ok_us.len() && t.ok_us[next] <= at {
                last_ok = Some(t.ok_us[next]);
                next += 1;
            }
            if let Some(ok) = last_ok {
                let stale = at - ok;
                max_stale_us = max_stale_us.max(stale);
                points.push((at, stale));
            }
        }
        lines.push((partition, points));
    }
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{y:.1}\" width=\"{PLOT_W}\" height=\"{AVAIL_H}\" fill=\"none\" stroke=\"#ddd\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{:.1} s</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0 s</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#555\">seconds since last ok write</text>",
        LEFT - 6.0,
        y + 10.0,
        max_stale_us as f64 / 1e6,
        LEFT - 6.0,
        y + AVAIL_H,
        LEFT + 6.0,
        y + 12.0
    );
    for (i, (partition, points)) in lines.iter().enumerate() {
        if points.is_empty() {
            continue;
        }
        let mut path = String::with_capacity(points.len() * 12);
        for &(at, stale) in points {
            let py = y + AVAIL_H - stale as f64 / max_stale_us as f64 * (AVAIL_H - 14.0);
            let _ = write!(path, "{:.1},{py:.1} ", scale.x(at));
        }
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.2\" points=\"{}\"><title>p{partition}</title></polyline>",
            PALETTE[i % PALETTE.len()],
            path.trim_end()
        );
    }
}

fn fault(s: &mut String, scale: &Scale, w: &FaultWindow, label_y: f64, axis_y: f64) {
    let x0 = scale.x(w.start_us);
    let x1 = scale.x(w.end_us.unwrap_or(scale.end_us));
    let end = w.end_us.map_or_else(|| "not healed".to_string(), secs);
    let name = escape(&w.name);
    let top = label_y + 2.0;
    let _ = writeln!(
        s,
        "<rect x=\"{x0:.1}\" y=\"{top:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{FAULT_COLOR}\" fill-opacity=\"0.15\">\
         <title>{name}: {} – {end}</title></rect>\
         <line x1=\"{x0:.1}\" y1=\"{top:.1}\" x2=\"{x0:.1}\" y2=\"{axis_y:.1}\" stroke=\"{FAULT_COLOR}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#5f3dc4\">{name}</text>",
        (x1 - x0).max(1.0),
        axis_y - top,
        secs(w.start_us),
        x0 + 3.0,
        label_y + 11.0
    );
}

//! The `--html` page's charts, chosen and filled from a [`Report`]: what
//! each one shows is decided here, how it is drawn in `report::svg`.
//!
//! Time charts shade the plan's phases (`phases`) and mark the run's events:
//! seconds with dropped connections or reconnects (`series[].drops`,
//! `reconnects`) and processes that went away (`resources[].died_at_s`).
//! The distributions read the report's percentile points (`percentiles`),
//! plotted as HdrHistogram does: percentile on a log scale of 1 / (1 - q).

use crate::monitor::procs::{ProcReport, ProcRole};
use crate::report::model::Report;
use crate::report::percentiles::Point;
use crate::report::series::{MAX_NODES, NodeSecond, SecondSample};
use crate::report::svg::{Axis, Band, Chart, Line, Mark};

pub const BLUE: &str = "#2563eb";
pub const GREEN: &str = "#16a34a";
pub const ORANGE: &str = "#ea580c";
pub const RED: &str = "#dc2626";
pub const PURPLE: &str = "#7c3aed";
pub const GREY: &str = "#6b7280";

/// Every chart of the page, in reading order.
pub fn all(r: &Report) -> Vec<Chart> {
    vec![
        open_connections(r),
        throughput(r),
        latency_over_time(r),
        latency_distribution(r),
        connection_distribution(r),
        cpu(r),
        rss(r),
    ]
}

/// The phases as shaded bands.
fn phase_bands(r: &Report) -> Vec<Band> {
    r.phases
        .named()
        .into_iter()
        .zip(["#fde68a", "#bbf7d0", "#bfdbfe"])
        .filter_map(|((name, f), color)| {
            Some(Band {
                from: f.start_s?,
                to: f.end_s?,
                label: name.to_string(),
                color,
            })
        })
        .collect()
}

/// Drops and reconnects (per second) and processes that went away.
pub fn events(series: &[SecondSample], resources: &[ProcReport]) -> Vec<Mark> {
    let mut v: Vec<Mark> = series
        .iter()
        .filter(|s| s.drops + s.reconnects > 0)
        .map(|s| {
            let mut what = Vec::new();
            if s.drops > 0 {
                what.push(plural(s.drops, "drop"));
            }
            if s.reconnects > 0 {
                what.push(plural(s.reconnects, "reconnect"));
            }
            Mark {
                at: s.t,
                label: format!("{} at {:.0} s", what.join(", "), s.t),
                color: if s.drops > 0 { RED } else { ORANGE },
            }
        })
        .collect();
    v.extend(resources.iter().filter_map(|p| {
        Some(Mark {
            at: p.died_at_s?,
            label: format!("{} went away at {:.1} s", p.name(), p.died_at_s?),
            color: PURPLE,
        })
    }));
    v
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn time_axis(r: &Report) -> Axis {
    let end = r
        .series
        .last()
        .map_or(r.duration_s, |s| s.t.max(r.duration_s));
    Axis::span("seconds into the run", 0.0, end, num)
}

/// A time chart with the phases shaded and the events marked.
fn over_time(r: &Report, id: &'static str, title: &str, y: Axis, lines: Vec<Line>) -> Chart {
    Chart {
        id,
        title: title.to_string(),
        x: time_axis(r),
        y,
        lines,
        bands: phase_bands(r),
        marks: events(&r.series, &r.resources),
        note: None,
    }
}

fn per_second(
    r: &Report,
    name: &str,
    color: &'static str,
    f: impl Fn(&SecondSample) -> Option<f64>,
) -> Line {
    Line {
        name: name.to_string(),
        color,
        dashed: false,
        points: r.series.iter().map(|s| (s.t, f(s))).collect(),
    }
}

/// The largest value of `lines`, or 1.
fn top(lines: &[Line]) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .fold(1.0, f64::max)
}

fn open_connections(r: &Report) -> Chart {
    let lines = vec![per_second(r, "open connections", BLUE, |s| {
        Some(s.open as f64)
    })];
    let y = Axis::linear("connections", 0.0, top(&lines), num);
    over_time(r, "chart-open", "Open connections", y, lines)
}

fn throughput(r: &Report) -> Chart {
    // Received drawn over sent: sent is dashed so it shows where they agree.
    let mut sent = per_second(r, "sent / s", BLUE, |s| {
        Some(s.sent as f64 / s.dt.max(1e-3))
    });
    sent.dashed = true;
    let lines = vec![
        per_second(r, "received / s", GREEN, |s| {
            Some(s.received as f64 / s.dt.max(1e-3))
        }),
        sent,
    ];
    let y = Axis::linear("messages per second", 0.0, top(&lines), num);
    over_time(
        r,
        "chart-throughput",
        "Messages sent and received per second",
        y,
        lines,
    )
}

fn latency_over_time(r: &Report) -> Chart {
    // A second without a reply has no latency: a gap, not a zero.
    let ms = |v: u64| (v > 0).then(|| v as f64 / 1000.0);
    let lines = vec![
        per_second(r, "p50", GREEN, |s| ms(s.p50_us)),
        per_second(r, "p95", ORANGE, |s| ms(s.p95_us)),
        per_second(r, "p99", RED, |s| ms(s.p99_us)),
    ];
    let lo = lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .fold(f64::INFINITY, f64::min);
    let y = Axis::log("ms (log scale)", lo.min(1.0), top(&lines), num);
    let mut c = over_time(
        r,
        "chart-latency",
        "Latency per second, corrected (p50, p95, p99)",
        y,
        lines,
    );
    c.note = Some("Each second's percentiles of the replies that arrived in it, from the intended send time (coordinated omission corrected).".into());
    c
}

/// x of percentile `p` on the HdrHistogram scale: log10(1 / (1 - q)); the
/// maximum (100 %) sits a little right of the deepest point.
fn hdr_x(p: f64, deepest: f64) -> f64 {
    if p >= 100.0 {
        deepest + 0.4
    } else {
        -(1.0 - p / 100.0).log10()
    }
}

/// An HdrHistogram-style percentile plot of `dists` (name, colour, points in us).
fn distribution(
    id: &'static str,
    title: &str,
    dists: &[(&str, &'static str, &[Point])],
    note: &str,
) -> Chart {
    let deepest = dists
        .iter()
        .flat_map(|d| d.2.iter())
        .filter(|p| p.0 < 100.0)
        .map(|p| hdr_x(p.0, 0.0))
        .fold(2.0, f64::max)
        .ceil();
    let lines: Vec<Line> = dists
        .iter()
        .map(|(name, color, pts)| Line {
            name: name.to_string(),
            color,
            dashed: false,
            points: pts
                .iter()
                .map(|(p, v)| (hdr_x(*p, deepest), Some(*v as f64 / 1000.0)))
                .collect(),
        })
        .collect();
    let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
    let mut ticks: Vec<(f64, String)> = (0..=deepest as usize)
        .map(|k| (k as f64, labels.get(k).unwrap_or(&"").to_string()))
        .collect();
    ticks.push((deepest + 0.4, "max".into()));
    Chart {
        id,
        title: title.to_string(),
        x: Axis::custom(
            "percentile (log scale of 1 / (1 - q))",
            0.0,
            deepest + 0.5,
            ticks,
        ),
        y: Axis::linear("ms", 0.0, top(&lines), num),
        lines,
        bands: Vec::new(),
        marks: Vec::new(),
        note: Some(note.to_string()),
    }
}

fn latency_distribution(r: &Report) -> Chart {
    let p = &r.percentiles;
    distribution(
        "chart-latency-dist",
        "Latency percentile distribution (whole run)",
        &[
            ("corrected", RED, &p.latency_us),
            ("uncorrected", GREY, &p.uncorrected_us),
        ],
        "A gap between the corrected and uncorrected curves means stalls (messages that waited to be sent), not steady slowness.",
    )
}

fn connection_distribution(r: &Report) -> Chart {
    distribution(
        "chart-connect-dist",
        "Connection time distribution (TCP + TLS + upgrade)",
        &[("connection time", BLUE, &r.percentiles.connection_us)],
        "Every successful handshake of the run, reconnects included.",
    )
}

/// The names of the nodes with per-second figures, in the series' order.
fn node_names(r: &Report) -> Vec<String> {
    r.resources
        .iter()
        .filter(|p| p.role == ProcRole::Node)
        .take(MAX_NODES)
        .map(|p| p.name().to_string())
        .collect()
}

/// A line per node, each in its own colour (they repeat past five).
fn node_lines(r: &Report, what: &str, f: impl Fn(&NodeSecond) -> Option<f64>) -> Vec<Line> {
    const COLORS: [&str; 5] = [PURPLE, ORANGE, BLUE, GREEN, RED];
    node_names(r)
        .iter()
        .enumerate()
        .map(|(i, name)| {
            per_second(
                r,
                &format!("{name} {what}"),
                COLORS[i % COLORS.len()],
                |s| s.nodes.get(i).and_then(&f),
            )
        })
        .collect()
}

const PER_PROCESS_NOTE: &str = "Per second, the report keeps each monitored node's CPU and RSS (the first 16 nodes) and loadgen's CPU (all its processes together); every process's whole-run figures are in the Resources table.";

fn cpu(r: &Report) -> Chart {
    let mut lines = node_lines(r, "CPU %", |n| n.cpu_pct);
    lines.push(per_second(r, "loadgen CPU %", GREY, |s| s.loadgen_cpu_pct));
    let y = Axis::linear("CPU % (100 = one core)", 0.0, top(&lines), num);
    let mut c = over_time(r, "chart-cpu", "CPU per process", y, lines);
    c.note = Some(PER_PROCESS_NOTE.into());
    c
}

fn rss(r: &Report) -> Chart {
    let lines = node_lines(r, "RSS", |n| {
        n.rss_bytes.map(|b| b as f64 / (1024.0 * 1024.0))
    });
    let title = if lines.len() > 1 {
        "Memory (RSS) of the nodes"
    } else {
        "Memory (RSS) of the node"
    };
    let y = Axis::linear("MiB", 0.0, top(&lines), num);
    let mut c = over_time(r, "chart-rss", title, y, lines);
    c.note = Some(PER_PROCESS_NOTE.into());
    c
}

/// A tick label: at most three decimals, no trailing zeros.
pub fn num(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_labels_are_short() {
        assert_eq!(num(0.30000000000000004), "0.3");
        assert_eq!(num(2000.0), "2000");
        assert_eq!(num(0.001), "0.001");
    }

    fn second(t: f64, drops: u64, reconnects: u64) -> SecondSample {
        SecondSample {
            t,
            dt: 1.0,
            open: 10,
            sent: 100,
            received: 100,
            timeouts: 0,
            errors: 0,
            drops,
            reconnects,
            p50_us: 1000,
            p95_us: 2000,
            p99_us: 3000,
            node_cpu_pct: None,
            node_rss_bytes: None,
            nodes: Vec::new(),
            loadgen_cpu_pct: None,
            phase: None,
        }
    }

    #[test]
    fn drops_reconnects_and_deaths_are_marked() {
        let series = [second(1.0, 0, 0), second(2.0, 3, 0), second(3.0, 0, 1)];
        let died = ProcReport {
            role: ProcRole::Node,
            label: "node 2".into(),
            pid: 7,
            node_id: Some("node2".into()),
            cpu_pct: None,
            cpu_pct_max: None,
            cpu_us_per_msg: None,
            rss_bytes: None,
            rss_before_bytes: None,
            bytes_per_conn: None,
            conns_at_sample: 0,
            died_at_s: Some(2.4),
            memory_note: None,
            note: None,
        };
        let marks = events(&series, &[died]);
        let labels: Vec<&str> = marks.iter().map(|m| m.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "3 drops at 2 s",
                "1 reconnect at 3 s",
                "node2 went away at 2.4 s"
            ]
        );
        assert_eq!(marks[0].at, 2.0);
    }

    #[test]
    fn the_maximum_sits_right_of_the_deepest_percentile() {
        assert_eq!(hdr_x(0.0, 3.0), 0.0);
        assert!((hdr_x(99.0, 3.0) - 2.0).abs() < 1e-9);
        assert_eq!(hdr_x(100.0, 3.0), 3.4);
    }
}

//! Where a finished search goes: the curve as a text table and the verdict
//! on stdout, `--json` (the [`CapacityReport`]) and `--html` (one
//! self-contained page: the curve drawn as inline SVG by `report::svg`).

use crate::capacity::model::{CapacityReport, Step};
use crate::error::Error;
use crate::report::charts::{BLUE, GREEN, GREY, ORANGE, RED, num};
use crate::report::fmt::fmt_us;
use crate::report::html;
use crate::report::svg::{Axis, Chart, Line, Mark, esc};
use crate::run::emit::write_json;
use std::fmt::Write as _;
use std::path::Path;

/// The steps in order of offered load: the latency-vs-throughput curve.
fn curve(r: &CapacityReport) -> Vec<&Step> {
    let mut v: Vec<&Step> = r.steps.iter().collect();
    v.sort_by(|a, b| a.offered_per_sec.total_cmp(&b.offered_per_sec));
    v
}

fn lat(s: &Step, us: u64) -> String {
    if s.latency_us.count > 0 {
        fmt_us(us)
    } else {
        "n/a".into()
    }
}

/// The curve as a fixed-width table.
pub fn table(r: &CapacityReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>4} {:>6} {:>7} {:>9} {:>10} {:>9} {:>10} {:>8} {:>8} {:>8} {:>8} {:>7}  verdict",
        "step",
        "kind",
        "conns",
        "msg/s/c",
        "offered/s",
        "sent/s",
        "replies/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "failed"
    );
    for st in curve(r) {
        let verdict = if st.held {
            "held".to_string()
        } else {
            format!("broke: {}", st.broke.join("; "))
        };
        let _ = writeln!(
            s,
            "{:>4} {:>6} {:>7} {:>9.2} {:>10.0} {:>9.0} {:>10.0} {:>8} {:>8} {:>8} {:>8} {:>7}  {verdict}",
            st.n,
            st.kind.name(),
            st.conns,
            st.rate_per_conn,
            st.offered_per_sec,
            st.sent_per_sec,
            st.replies_per_sec,
            lat(st, st.latency_us.p50),
            lat(st, st.latency_us.p90),
            lat(st, st.latency_us.p99),
            lat(st, st.latency_us.p999),
            st.failed,
        );
    }
    s
}

/// The verdict: the highest sustained rate, why the search ended, the grade.
pub fn verdict(r: &CapacityReport) -> String {
    let mut s = String::new();
    match &r.sustained {
        Some(b) => {
            let _ = writeln!(
                s,
                "Highest sustained rate: {:.0} msg/s ({} conns x {:.2} msg/s; {:.0} replies/s, p99 {}) under {}, errors <= {} %",
                b.offered_per_sec,
                b.conns,
                b.rate_per_conn,
                b.replies_per_sec,
                fmt_us(b.latency_us.p99),
                r.slo_text,
                r.max_error_frac * 100.0
            );
        }
        None => {
            let _ = writeln!(
                s,
                "Highest sustained rate: none (no step held {})",
                r.slo_text
            );
        }
    }
    if let Some(b) = r.first_broken_per_sec {
        let _ = writeln!(s, "Lowest offered rate that broke: {b:.0} msg/s");
    }
    let _ = writeln!(
        s,
        "Search ended: {} ({} steps, {:.0} s).",
        r.stop_reason,
        r.steps.len(),
        r.duration_s
    );
    if let Some(g) = &r.grade {
        let _ = writeln!(
            s,
            "{}: {}; graded {} (Target {}, Good {}, Acceptable {}).",
            g.metric,
            g.value,
            g.grade.label(),
            g.thresholds[0],
            g.thresholds[1],
            g.thresholds[2]
        );
    }
    s
}

/// Print the curve and the verdict, and write the files asked for.
pub fn emit(json: Option<&Path>, html_out: Option<&Path>, r: &CapacityReport) -> Result<(), Error> {
    println!(
        "loadgen capacity: {} ({} mode), objective {}, errors <= {} %; each step: {} s warm-up, {} s graded",
        r.targets.join(", "),
        format!("{:?}", r.mode).to_lowercase(),
        r.slo_text,
        r.max_error_frac * 100.0,
        r.warmup_s,
        r.step_duration_s
    );
    println!("Latency (corrected) against offered load, in order of load:");
    print!("{}", table(r));
    println!();
    print!("{}", verdict(r));
    for w in &r.warnings {
        eprintln!("WARNING: {w}");
    }
    if let Some(p) = json {
        write_json(p, r)?;
    }
    if let Some(p) = html_out {
        std::fs::write(p, page(r)).map_err(|e| Error::io(format!("--html {}", p.display()), e))?;
    }
    Ok(())
}

/// The curve's charts: latency against offered load, and replies against it.
pub fn charts(r: &CapacityReport) -> Vec<Chart> {
    let steps = curve(r);
    let x_max = steps.iter().map(|s| s.offered_per_sec).fold(1.0, f64::max);
    let x = || Axis::linear("offered load, msg/s", 0.0, x_max, num);
    let ms = |s: &Step, us: u64| (s.latency_us.count > 0 && us > 0).then(|| us as f64 / 1000.0);
    let line = |name: &str, color, f: &dyn Fn(&Step) -> Option<f64>| Line {
        name: name.to_string(),
        color,
        dashed: false,
        points: steps.iter().map(|s| (s.offered_per_sec, f(s))).collect(),
    };
    let mut lat_lines = vec![
        line("p50", GREEN, &|s| ms(s, s.latency_us.p50)),
        line("p90", ORANGE, &|s| ms(s, s.latency_us.p90)),
        line("p99", RED, &|s| ms(s, s.latency_us.p99)),
    ];
    for o in &r.slo {
        let v = o.limit_us as f64 / 1000.0;
        lat_lines.push(Line {
            name: format!("objective {}", o.text()),
            color: GREY,
            dashed: true,
            points: vec![(0.0, Some(v)), (x_max, Some(v))],
        });
    }
    let values = || {
        lat_lines
            .iter()
            .flat_map(|l| l.points.iter().filter_map(|p| p.1))
    };
    let lo = values().fold(f64::INFINITY, f64::min);
    let hi = values().fold(1.0, f64::max);
    let mut marks = Vec::new();
    if let Some(b) = &r.sustained {
        marks.push(Mark {
            at: b.offered_per_sec,
            label: format!("highest sustained: {:.0} msg/s", b.offered_per_sec),
            color: GREEN,
        });
    }
    if let Some(b) = r.first_broken_per_sec {
        marks.push(Mark {
            at: b,
            label: format!("lowest that broke: {b:.0} msg/s"),
            color: RED,
        });
    }
    let latency = Chart {
        id: "chart-capacity-latency",
        title: "Latency against offered load (each step's graded phase, corrected)".into(),
        x: x(),
        y: Axis::log("ms (log scale)", lo.min(1.0), hi, num),
        lines: lat_lines,
        bands: Vec::new(),
        marks: marks.clone(),
        note: Some(format!(
            "One point per step: its steady phase's percentiles from the intended send time. The dashed lines are the objective ({}).",
            r.slo_text
        )),
    };
    let mut offered = line("offered", BLUE, &|s| Some(s.offered_per_sec));
    offered.dashed = true;
    let rate_lines = vec![
        line("replies / s", GREEN, &|s| Some(s.replies_per_sec)),
        offered,
    ];
    let throughput = Chart {
        id: "chart-capacity-throughput",
        title: "Replies per second against offered load".into(),
        x: x(),
        y: Axis::linear("msg/s", 0.0, x_max.max(hi_of(&rate_lines)), num),
        lines: rate_lines,
        bands: Vec::new(),
        marks,
        note: Some(
            "Where the replies fall below the dashed offered line, the target no longer keeps up."
                .into(),
        ),
    };
    vec![latency, throughput]
}

fn hi_of(lines: &[Line]) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.points.iter().filter_map(|p| p.1))
        .fold(1.0, f64::max)
}

/// The whole `--html` page.
pub fn page(r: &CapacityReport) -> String {
    let mut s = html::head(&format!("loadgen capacity {}", r.started_at));
    let _ = write!(
        s,
        "<h1>loadgen capacity</h1><p class=\"meta\">{} &middot; {} &middot; objective {} &middot; {} steps, {:.0} s</p>",
        esc(&r.started_at),
        esc(&r.targets.join(", ")),
        esc(&r.slo_text),
        r.steps.len(),
        r.duration_s
    );
    s.push_str("<div id=\"verdict\">");
    for line in verdict(r).lines() {
        let _ = write!(s, "<p>{}</p>", esc(line));
    }
    s.push_str("</div>");
    for w in &r.warnings {
        let _ = write!(s, "<div class=\"warn\">{}</div>", esc(w));
    }
    s.push_str("<h2 id=\"charts\">Curve</h2>");
    for c in charts(r) {
        s.push_str(&c.render());
    }
    s.push_str("<h2>Steps</h2><pre id=\"steps\">");
    s.push_str(&esc(&table(r)));
    s.push_str("</pre></main></body></html>\n");
    s
}

//! `--html FILE`: the report as one self-contained page for people.
//!
//! Everything is inline: the style, and the charts as SVG drawn by loadgen
//! (`report::charts`, `report::svg`). The page has no script, and its
//! Content-Security-Policy forbids every fetch, so it reads the same from
//! a CI artifact, a mail attachment or a machine without network.

use crate::monitor::procs::ProcRole;
use crate::opts::GradePhase;
use crate::report::charts;
use crate::report::fmt::fmt_us;
use crate::report::grades::Grade;
use crate::report::model::{PhaseFigures, Report};
use crate::report::svg::esc;
use crate::report::template;
use std::fmt::Write as _;

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111827;margin:0;background:#f3f4f6}
main{max-width:960px;margin:0 auto;padding:16px 20px 40px}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:17px;margin:28px 0 8px}
.meta{color:#4b5563;margin:0 0 8px}
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:600;color:#fff}
.pass{background:#16a34a}.fail{background:#dc2626}
.warn{background:#fef3c7;border-left:4px solid #d97706;padding:6px 10px;margin:6px 0}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{border:1px solid #e5e7eb;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f9fafb}td.t{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}
.g-target{background:#dcfce7}.g-good{background:#ecfccb}.g-acceptable{background:#fef9c3}
.g-fail{background:#fee2e2;font-weight:600}.g-not_measured{color:#6b7280}
.chart{background:#fff;border:1px solid #e5e7eb;border-radius:6px;margin:0 0 14px;padding:8px 10px}
figcaption{font-weight:600;margin:0 0 4px}
svg{width:100%;height:auto;display:block}
.plot{fill:#fff;stroke:#d1d5db}.grid{stroke:#eef0f3}
.tick{font-size:11px;fill:#4b5563}.axis{font-size:12px;fill:#374151}
.band{opacity:.45}.band-label{font-size:11px;fill:#6b7280}
.data{fill:none;stroke-width:1.8;stroke-linejoin:round}
.event line{stroke-width:1.2;stroke-dasharray:3 3}
.empty{font-size:14px;fill:#9ca3af}
.legend{font-size:12px;color:#374151;margin-top:2px}
.legend span{margin-right:14px;white-space:nowrap}
.legend i{display:inline-block;width:12px;height:3px;margin-right:5px;vertical-align:middle}
.legend i.band{height:10px;opacity:.6}.legend i.mark{height:10px;width:0;border-left:2px dashed #dc2626}
.note{font-size:12px;color:#6b7280;margin:4px 0 0}
pre{background:#fff;border:1px solid #e5e7eb;padding:10px;overflow-x:auto;font-size:12px}
"#;

/// The whole page.
pub fn page(r: &Report) -> String {
    let mut s = head(&format!("loadgen report {}", r.started_at));
    header(&mut s, r);
    s.push_str("<h2>Target metrics</h2>");
    grade_table(&mut s, r);
    s.push_str("<h2 id=\"charts\">Charts</h2>");
    for c in charts::all(r) {
        s.push_str(&c.render());
    }
    s.push_str("<h2>Phases</h2>");
    phase_table(&mut s, r);
    s.push_str("<h2>Resources</h2>");
    resource_table(&mut s, r);
    s.push_str("<h2>Results template (filled)</h2><pre>");
    s.push_str(&esc(&template::template(r)));
    s.push_str("</pre></main></body></html>\n");
    s
}

/// A page's start, up to the opened `<main>`: the title, the style, and a
/// Content-Security-Policy that forbids every fetch (inline style only).
pub fn head(title: &str) -> String {
    let mut s = String::with_capacity(64 * 1024);
    s.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    s.push_str(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">",
    );
    s.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">");
    let _ = write!(
        s,
        "<title>{}</title><style>{STYLE}</style></head><body><main>",
        esc(title)
    );
    s
}

fn header(s: &mut String, r: &Report) {
    let (class, verdict) = if r.exit_code == 0 {
        ("pass", "PASS")
    } else {
        ("fail", "FAIL")
    };
    let _ = write!(
        s,
        "<h1>loadgen report <span class=\"verdict {class}\">{verdict}</span></h1>"
    );
    let _ = write!(
        s,
        "<p class=\"meta\">{} &middot; {:.1} s &middot; {} mode, {} connections x {} msg/s &middot; {}</p>",
        esc(&r.started_at),
        r.duration_s,
        format!("{:?}", r.mode).to_lowercase(),
        r.connections.target,
        r.rate_per_conn,
        esc(&r.targets.join(", "))
    );
    let _ = write!(
        s,
        "<p class=\"meta\">{} sent, {} answered ok ({:.3} % success), {:.0} replies/s, latency p99 {} corrected; {}</p>",
        r.messages.sent,
        r.messages.ok,
        r.success_rate * 100.0,
        r.messages.per_sec,
        fmt_us(r.latency_us.corrected.p99),
        esc(&r.environment)
    );
    for w in r
        .warnings
        .iter()
        .chain(&r.phases.note)
        .chain(&r.phases.ramp_missed)
    {
        let _ = write!(s, "<div class=\"warn\">{}</div>", esc(w));
    }
}

fn grade_table(s: &mut String, r: &Report) {
    s.push_str("<table id=\"grades\"><tr><th>Metric</th><th>Target</th><th>Good</th><th>Acceptable</th><th>Measured</th><th>Grade</th></tr>");
    for g in &r.grades {
        let key = match g.grade {
            Grade::Target => "target",
            Grade::Good => "good",
            Grade::Acceptable => "acceptable",
            Grade::Fail => "fail",
            Grade::NotMeasured => "not_measured",
        };
        let _ = write!(
            s,
            "<tr class=\"g-{key}\"><td>{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td class=\"t\">{}</td><td>{}</td><td>{}</td></tr>",
            esc(&g.metric),
            esc(&g.thresholds[0]),
            esc(&g.thresholds[1]),
            esc(&g.thresholds[2]),
            esc(&g.value),
            g.grade.label()
        );
    }
    s.push_str("</table>");
    let graded = match (r.phases.graded, &r.phases.note) {
        (GradePhase::Steady, _) => {
            "Graded: the steady phase (the ramps are in the Phases table).".to_string()
        }
        (GradePhase::All, Some(why)) => format!("Graded: the whole run ({why})."),
        (GradePhase::All, None) => "Graded: the whole run (--grade-phase all).".to_string(),
    };
    let _ = write!(s, "<p class=\"note\">{}</p>", esc(&graded));
}

fn phase_table(s: &mut String, r: &Report) {
    s.push_str("<table id=\"phases\"><tr><th>Phase</th><th>Span</th><th>Connections opened</th><th>Connect p99</th><th>Replies/s</th><th>Latency p50</th><th>p99</th><th>Errors</th><th>Timeouts</th></tr>");
    for (name, f) in r.phases.named() {
        phase_row(s, name, f);
    }
    s.push_str("</table>");
}

fn phase_row(s: &mut String, name: &str, f: &PhaseFigures) {
    let (Some(a), Some(b)) = (f.start_s, f.end_s) else {
        let _ = write!(
            s,
            "<tr><td>{name}</td><td colspan=\"8\">none in this run</td></tr>"
        );
        return;
    };
    let l = &f.latency_us.corrected;
    let lat = |v: u64| {
        if l.count > 0 { fmt_us(v) } else { "n/a".into() }
    };
    let _ = write!(
        s,
        "<tr><td>{name}</td><td>{a:.0}-{b:.0} s</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.0}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
        f.connections.established,
        if f.connections.time_us.count > 0 {
            fmt_us(f.connections.time_us.p99)
        } else {
            "n/a".into()
        },
        f.messages.per_sec,
        lat(l.p50),
        lat(l.p99),
        f.messages.errors_total,
        f.messages.timeouts
    );
}

fn resource_table(s: &mut String, r: &Report) {
    s.push_str("<table id=\"resources\"><tr><th>Process</th><th>Role</th><th>CPU mean</th><th>CPU max</th><th>CPU per message</th><th>RSS at peak</th><th>Memory per connection</th><th>Note</th></tr>");
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("n/a".to_string(), f);
    for p in &r.resources {
        let role = match p.role {
            ProcRole::Node => "node",
            ProcRole::Redis => "redis",
            ProcRole::Loadgen => "loadgen",
        };
        let note = [&p.note, &p.memory_note]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        let _ = write!(
            s,
            "<tr><td>{} (pid {})</td><td>{role}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td></tr>",
            esc(p.name()),
            p.pid,
            opt(p.cpu_pct, &|v| format!("{v:.1} %")),
            opt(p.cpu_pct_max, &|v| format!("{v:.1} %")),
            opt(p.cpu_us_per_msg, &|v| format!("{v:.1} us")),
            opt(p.rss_bytes.map(|b| b as f64), &|v| format!(
                "{:.1} MiB",
                v / 1048576.0
            )),
            opt(p.bytes_per_conn, &|v| format!("{:.1} KiB", v / 1024.0)),
            esc(&note)
        );
    }
    if let Some(v) = r.nodes_cpu_us_per_msg {
        let _ = write!(
            s,
            "<tr><td colspan=\"4\">all nodes together</td><td class=\"num\">{v:.1} us</td><td colspan=\"3\"></td></tr>"
        );
    }
    s.push_str("</table>");
    if let Some(h) = &r.host {
        let _ = write!(s, "<p>Host CPU: {}</p>", esc(&template::host_line(h)));
    }
}

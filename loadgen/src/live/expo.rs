//! The Prometheus text exposition format (version 0.0.4) of the live
//! [`Figures`]: every series carries the run's labels, so two runs scraped
//! by one Prometheus stay apart.
//!
//! Every family is always written, zeros included: a panel that asks for a
//! count that has not happened yet gets 0, not "no data". A second that
//! measured nothing gives `NaN` quantiles, as Prometheus' own client
//! libraries write an empty summary window.

use crate::engine::stats::ErrorKind;
use crate::live::figures::{Buckets, Figures, Recent};
use crate::report::phases::Phase;
use std::fmt::Write;

/// The labels every series of one run carries.
#[derive(Debug, Clone)]
pub struct RunLabels {
    /// The run id (as in the sessions' `{RUN}`).
    pub run: String,
    /// `echo`, `chat`, `raw` or `profile`.
    pub mode: String,
    /// loadgen processes measuring (`--workers`).
    pub workers: u32,
}

impl RunLabels {
    /// `run="…",mode="…"`, escaped.
    fn base(&self) -> String {
        format!(
            "run=\"{}\",mode=\"{}\"",
            escape(&self.run),
            escape(&self.mode)
        )
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn phase_label(p: Phase) -> &'static str {
    match p {
        Phase::RampUp => "ramp_up",
        Phase::Steady => "steady",
        Phase::RampDown => "ramp_down",
    }
}

/// Writes families one after the other; `base` goes into every series.
struct Writer {
    out: String,
    base: String,
}

impl Writer {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One series; `extra` is more labels (`kind="read"`) or empty.
    fn series(&mut self, name: &str, extra: &str, v: impl std::fmt::Display) {
        let sep = if extra.is_empty() { "" } else { "," };
        let _ = writeln!(self.out, "{name}{{{}{sep}{extra}}} {v}", self.base);
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, v: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.series(name, "", v);
    }

    fn histogram(&mut self, name: &str, help: &str, b: &Buckets) {
        self.family(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        for (le, n) in b.cumulative() {
            let le = le.map_or_else(|| "+Inf".to_string(), |s| s.to_string());
            self.series(&bucket, &format!("le=\"{le}\""), n);
        }
        self.series(&format!("{name}_sum"), "", b.sum_s);
        self.series(&format!("{name}_count"), "", b.count);
    }

    fn recent(&mut self, name: &str, help: &str, r: &Recent) {
        self.family(name, "gauge", help);
        for (i, q) in Recent::LABELS.iter().enumerate() {
            let v = r.quantiles.map_or(f64::NAN, |v| v[i]);
            self.series(name, &format!("quantile=\"{q}\""), v);
        }
    }
}

/// The whole exposition of `f`.
pub fn render(f: &Figures, labels: &RunLabels) -> String {
    let mut w = Writer {
        out: String::with_capacity(8 * 1024),
        base: labels.base(),
    };
    w.family(
        "loadgen_run_info",
        "gauge",
        "The run: always 1, with its labels.",
    );
    w.series(
        "loadgen_run_info",
        &format!(
            "version=\"{}\",workers=\"{}\"",
            env!("CARGO_PKG_VERSION"),
            labels.workers
        ),
        1,
    );
    w.single(
        "loadgen_run_elapsed_seconds",
        "gauge",
        "Seconds since the run's first connection, at the end of the last collected second.",
        f.elapsed_s,
    );
    w.single(
        "loadgen_run_finished",
        "gauge",
        "1 once sending and the final drain are over (the endpoint lingers with the final figures).",
        u8::from(f.finished),
    );
    w.family(
        "loadgen_phase",
        "gauge",
        "1 for the plan's phase of the last collected second (ramp_up, steady, ramp_down), 0 for the others.",
    );
    for p in [Phase::RampUp, Phase::Steady, Phase::RampDown] {
        let on = u8::from(f.phase == Some(p));
        w.series(
            "loadgen_phase",
            &format!("phase=\"{}\"", phase_label(p)),
            on,
        );
    }
    w.single(
        "loadgen_connections_open",
        "gauge",
        "WebSocket connections open.",
        f.open,
    );
    w.single(
        "loadgen_connections_target",
        "gauge",
        "Connections the plan wants open now.",
        f.target,
    );
    let c = &f.counts;
    for (name, help, v) in [
        (
            "loadgen_connections_opened_total",
            "Connections opened (handshake and welcome done), reconnections included.",
            c.conn_ok,
        ),
        (
            "loadgen_connections_failed_total",
            "Connection attempts that failed.",
            c.conn_failed,
        ),
        (
            "loadgen_connections_dropped_total",
            "Connections the server or the network ended.",
            c.drops,
        ),
        (
            "loadgen_reconnects_total",
            "Handshakes after a slot's first (--reconnect).",
            c.reconnects,
        ),
        ("loadgen_messages_sent_total", "Messages sent.", c.sent),
        (
            "loadgen_messages_received_total",
            "Messages completed by their reply.",
            c.received,
        ),
        (
            "loadgen_messages_ok_total",
            "Messages answered within --timeout with correct contents.",
            c.ok,
        ),
        (
            "loadgen_message_timeouts_total",
            "Messages without a reply within --timeout.",
            c.timeouts,
        ),
        (
            "loadgen_messages_lost_total",
            "Messages unanswered when their connection dropped.",
            c.lost,
        ),
        (
            "loadgen_late_replies_total",
            "Replies that came after their message timed out.",
            c.late,
        ),
    ] {
        w.single(name, "counter", help, v);
    }
    w.family(
        "loadgen_errors_total",
        "counter",
        "Errors by kind (docs/LOADGEN.md lists the kinds).",
    );
    for k in ErrorKind::ALL {
        let kind = format!("kind=\"{}\"", k.name());
        w.series("loadgen_errors_total", &kind, c.errors[k as usize]);
    }
    w.histogram(
        "loadgen_latency_seconds",
        "Reply latency from the intended send time (coordinated-omission corrected).",
        &f.latency,
    );
    w.histogram(
        "loadgen_latency_uncorrected_seconds",
        "Reply latency from the actual send time.",
        &f.latency_uncorrected,
    );
    w.histogram(
        "loadgen_connect_seconds",
        "Connection time: TCP connect, TLS and the WebSocket upgrade.",
        &f.connect,
    );
    w.histogram(
        "loadgen_send_lag_seconds",
        "Actual minus intended send time: how far loadgen fell behind its schedule.",
        &f.send_lag,
    );
    w.recent(
        "loadgen_latency_last_second_seconds",
        "The last collected second's corrected latency at each quantile (exact, from HdrHistogram); NaN when no reply came in it.",
        &f.recent_latency,
    );
    w.recent(
        "loadgen_send_lag_last_second_seconds",
        "The last collected second's send lag at each quantile; NaN when nothing was sent in it.",
        &f.recent_send_lag,
    );
    w.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::collect::Second;
    use crate::engine::stats::record;
    use std::time::Duration;

    fn labels() -> RunLabels {
        RunLabels {
            run: "ab\"c".into(),
            mode: "echo".into(),
            workers: 2,
        }
    }

    /// Every sample line: name, labels, value (parsed).
    fn samples(text: &str) -> Vec<(String, String, f64)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, v) = l.rsplit_once(' ').expect("value");
                let (name, labels) = series.split_once('{').expect("labels");
                let labels = labels.strip_suffix('}').expect("closed labels");
                let v = v.parse::<f64>().expect("number");
                (name.to_string(), labels.to_string(), v)
            })
            .collect()
    }

    #[test]
    fn every_family_is_typed_and_every_series_labelled() {
        let mut f = Figures::default();
        let mut s = Second::empty();
        s.start = Duration::ZERO;
        s.len = Duration::from_secs(1);
        s.open = 7;
        s.delta.sent = 10;
        s.delta.received = 9;
        s.delta.error(ErrorKind::Read);
        record(&mut s.corrected, 3_000);
        f.add(&s, Phase::Steady, 8);
        let text = render(&f, &labels());
        let all = samples(&text);
        assert!(all.len() > 60, "{}", all.len());
        for (name, l, _) in &all {
            assert!(
                l.starts_with("run=\"ab\\\"c\",mode=\"echo\""),
                "{name}{{{l}"
            );
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| text.contains(&format!("# TYPE {f} histogram")))
                .unwrap_or(name);
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "{name} untyped"
            );
        }
        let get = |n: &str, extra: &str| {
            all.iter()
                .find(|(name, l, _)| name == n && l.ends_with(extra))
                .map(|x| x.2)
                .unwrap_or_else(|| panic!("{n} {extra}"))
        };
        assert_eq!(get("loadgen_connections_open", "\""), 7.0);
        assert_eq!(get("loadgen_messages_sent_total", "\""), 10.0);
        assert_eq!(get("loadgen_errors_total", "kind=\"read\""), 1.0);
        assert_eq!(get("loadgen_errors_total", "kind=\"write\""), 0.0);
        assert_eq!(get("loadgen_phase", "phase=\"steady\""), 1.0);
        assert_eq!(get("loadgen_phase", "phase=\"ramp_up\""), 0.0);
        assert_eq!(get("loadgen_latency_seconds_bucket", "le=\"0.0025\""), 0.0);
        assert_eq!(get("loadgen_latency_seconds_bucket", "le=\"0.005\""), 1.0);
        assert_eq!(get("loadgen_latency_seconds_bucket", "le=\"+Inf\""), 1.0);
        assert_eq!(get("loadgen_latency_seconds_count", "\""), 1.0);
        let p50 = get("loadgen_latency_last_second_seconds", "quantile=\"0.5\"");
        assert!((p50 - 0.003).abs() < 1e-5, "{p50}");
        // Nothing sent in a measured way: NaN, still a number to Prometheus.
        assert!(get("loadgen_send_lag_last_second_seconds", "quantile=\"0.99\"").is_nan());
    }
}

//! `loadgen capacity`'s options checked into a typed search (exit 2 on
//! anything impossible), and the run [`Config`] of each step derived from
//! it: the same validated run options, with only the plan changed.

use crate::capacity::args::CapacityOpts;
use crate::capacity::slo::{Slo, parse_latency, parse_pct};
use crate::config::error::{ConfigError, bad};
use crate::config::{Config, MAX_RATE, parse_duration};
use crate::engine::plan::{Plan, Stage};
use std::time::Duration;

/// Longest warm-up or hold of one step.
const MAX_STEP: Duration = Duration::from_secs(3600);
/// Most steps a search may be given.
const MAX_STEPS: u32 = 100;
/// Time a step costs besides its plan and drain: the probe, the handshakes.
const STEP_OVERHEAD: Duration = Duration::from_secs(2);

/// What the steps change.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Axis {
    /// The offered rate (msg/s over all connections); `conns` connections
    /// share it.
    Rate { conns: u64 },
    /// The connection count; each sends `rate_per_conn`.
    Conns { rate_per_conn: f64 },
}

/// How the next climbing step grows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Growth {
    Times(f64),
    Plus(f64),
}

impl Growth {
    fn parse(s: &str, whole: bool) -> Result<Growth, ConfigError> {
        let t = s.trim();
        let num = |r: &str| r.trim().parse::<f64>().ok().filter(|v| v.is_finite());
        let g = if let Some(r) = t.strip_prefix(['x', 'X', '*']) {
            match num(r) {
                Some(f) if f > 1.0 && f <= 100.0 => Growth::Times(f),
                _ => {
                    return bad(format!(
                        "--step {s:?}: the factor must be above 1 and at most 100, e.g. --step x2"
                    ));
                }
            }
        } else if let Some(r) = t.strip_prefix('+') {
            match num(r) {
                Some(n) if n > 0.0 && (!whole || n.fract() == 0.0) => Growth::Plus(n),
                _ => {
                    return bad(format!(
                        "--step {s:?}: the increment must be a positive {}, e.g. --step +100",
                        if whole {
                            "whole number of connections"
                        } else {
                            "number of msg/s"
                        }
                    ));
                }
            }
        } else {
            return bad(format!(
                "--step {s:?} is neither xFACTOR nor +INCREMENT, e.g. --step x2 or --step +500"
            ));
        };
        Ok(g)
    }

    /// The value after `v`: strictly more (a whole number when `whole`).
    pub fn after(self, v: f64, whole: bool) -> f64 {
        let n = match self {
            Growth::Times(f) => v * f,
            Growth::Plus(d) => v + d,
        };
        if whole { n.round().max(v + 1.0) } else { n }
    }
}

/// A validated capacity search.
#[derive(Debug, Clone)]
pub struct Search {
    /// The run options every step shares (its plan is replaced per step).
    pub base: Config,
    pub axis: Axis,
    /// First and largest value of the axis (msg/s, or connections).
    pub start: f64,
    pub max: f64,
    pub growth: Growth,
    /// Each step's warm-up (ramp-up phase) and hold (its graded phase).
    pub warmup: Duration,
    pub hold: Duration,
    pub slo: Slo,
    pub narrow_steps: u32,
    /// Narrowing stops once broke - held <= precision x held.
    pub precision: f64,
    pub max_steps: u32,
    pub max_time: Duration,
}

impl Search {
    pub fn from_opts(o: &CapacityOpts) -> Result<Search, ConfigError> {
        let l = &o.load;
        if l.stages.is_some() {
            return bad(
                "loadgen capacity plans each step itself: drop --stages (use --warmup and --step-duration)",
            );
        }
        if l.duration != "60s" {
            return bad(
                "loadgen capacity plans each step itself: drop --duration (each step lasts --warmup + --step-duration)",
            );
        }
        for (flag, given) in [
            ("--out-md", l.out_md.is_some()),
            ("--hdr-log", l.hdr_log.is_some()),
            ("--min-success-rate", l.min_success_rate.is_some()),
            ("--metrics-listen", l.metrics_listen.is_some()),
        ] {
            if given {
                return bad(format!(
                    "{flag} applies to a single run, not to loadgen capacity (its outputs are --json and --html; its error budget is --max-errors)"
                ));
            }
        }
        let base = Config::from_opts(l)?;
        let slo = Slo {
            latency: parse_latency(&o.slo).map_err(ConfigError)?,
            max_error_frac: parse_pct("--max-errors", &o.max_errors).map_err(ConfigError)?,
        };
        let hold = parse_duration("--step-duration", &o.step_duration)?;
        let warmup = parse_duration("--warmup", &o.warmup)?;
        if hold < Duration::from_secs(3) || hold > MAX_STEP {
            return bad(
                "--step-duration must be 3s to 1h: the graded phase is the hold less up to a second, in whole seconds, e.g. --step-duration 10s",
            );
        }
        if warmup > MAX_STEP {
            return bad("--warmup must be at most 1h, e.g. --warmup 3s");
        }
        let (axis, start, max) = match o.start_conns {
            None => rate_axis(o, l.conns, hold)?,
            Some(c) => conns_axis(o, c, l.conns, l.rate)?,
        };
        let growth = Growth::parse(&o.step, matches!(axis, Axis::Conns { .. }))?;
        if o.narrow_steps > 20 {
            return bad("--narrow-steps must be at most 20");
        }
        if o.max_steps == 0 || o.max_steps > MAX_STEPS {
            return bad(format!("--max-steps must be 1 to {MAX_STEPS}"));
        }
        let precision = parse_pct("--precision", &o.precision).map_err(ConfigError)?;
        if precision > 0.5 {
            return bad("--precision must be at most 50%, e.g. --precision 3%");
        }
        let max_time = parse_duration("--max-time", &o.max_time)?;
        let search = Search {
            base,
            axis,
            start,
            max,
            growth,
            warmup,
            hold,
            slo,
            narrow_steps: o.narrow_steps,
            precision,
            max_steps: o.max_steps,
            max_time,
        };
        if max_time < search.step_time() || max_time > Duration::from_secs(24 * 3600) {
            return bad(format!(
                "--max-time must be at least one step (about {}s: --warmup + --step-duration + --timeout + 2s) and at most 24h",
                search.step_time().as_secs()
            ));
        }
        Ok(search)
    }

    /// Whether the axis counts connections (whole numbers).
    pub fn whole(&self) -> bool {
        matches!(self.axis, Axis::Conns { .. })
    }

    /// Connections and per-connection rate of the step at `v`.
    pub fn shape(&self, v: f64) -> (u64, f64) {
        match self.axis {
            Axis::Rate { conns } => (conns, v / conns as f64),
            Axis::Conns { rate_per_conn } => (v.round() as u64, rate_per_conn),
        }
    }

    /// Messages per second offered by the step at `v`.
    pub fn offered(&self, v: f64) -> f64 {
        let (conns, rate) = self.shape(v);
        conns as f64 * rate
    }

    /// The plan of the step at `v`: its connections open over the warm-up
    /// (the ramp-up phase), then hold (the steady phase).
    pub fn plan(&self, v: f64) -> Plan {
        let (conns, rate) = self.shape(v);
        let connect_rate = self.base.load.plan.connect_rate;
        if self.warmup.is_zero() {
            return Plan::constant(conns, self.hold, rate, connect_rate);
        }
        Plan {
            stages: vec![
                Stage {
                    duration: self.warmup,
                    target: conns,
                },
                Stage {
                    duration: self.hold,
                    target: conns,
                },
            ],
            rate,
            connect_rate,
        }
    }

    /// The run configuration of the step at `v`: the shared options, this
    /// step's plan, and no per-run output files.
    pub fn step_config(&self, v: f64) -> Config {
        let mut c = self.base.clone();
        c.load.plan = self.plan(v);
        c.json = None;
        c.html = None;
        c.out_md = None;
        c.hdr_log = None;
        c
    }

    /// The longest one step may take: its plan, the drain (bounded by
    /// --timeout) and the probe and handshakes.
    pub fn step_time(&self) -> Duration {
        self.warmup + self.hold + self.base.load.timeout + STEP_OVERHEAD
    }
}

/// The rate axis: from --start-rate to --max-rate over --conns connections.
fn rate_axis(
    o: &CapacityOpts,
    conns: u64,
    hold: Duration,
) -> Result<(Axis, f64, f64), ConfigError> {
    if o.load.rate != 10.0 {
        return bad(
            "loadgen capacity sets each connection's rate (offered rate / --conns): drop --rate, or step connections with --start-conns (each sending --rate)",
        );
    }
    let ceiling = conns as f64 * MAX_RATE;
    let start = o.start_rate.unwrap_or(100.0);
    let max = o.max_rate.unwrap_or(ceiling);
    if !start.is_finite() || start <= 0.0 {
        return bad("--start-rate must be a positive number of msg/s, e.g. --start-rate 1000");
    }
    if !max.is_finite() || max < start {
        return bad(format!(
            "--max-rate {max} is below --start-rate {start}: raise it, e.g. --max-rate {}",
            start * 10.0
        ));
    }
    if max > ceiling {
        return bad(format!(
            "--max-rate {max} needs more than {MAX_RATE} msg/s per connection over --conns {conns}: raise --conns to at least {}",
            (max / MAX_RATE).ceil()
        ));
    }
    if start / conns as f64 * hold.as_secs_f64() < 1.0 {
        return bad(format!(
            "at --start-rate {start} over --conns {conns}, a connection sends less than one message per --step-duration: lower --conns or raise --start-rate"
        ));
    }
    Ok((Axis::Rate { conns }, start, max))
}

/// The connection axis: from --start-conns to --max-conns, each at --rate.
fn conns_axis(
    o: &CapacityOpts,
    start: u64,
    conns: u64,
    rate: f64,
) -> Result<(Axis, f64, f64), ConfigError> {
    if conns != 100 {
        return bad(
            "--start-conns steps the connection count: drop --conns (use --start-conns and --max-conns)",
        );
    }
    if rate <= 0.0 {
        return bad("--start-conns needs connections that send: --rate above 0, e.g. --rate 10");
    }
    let max = o.max_conns.unwrap_or(start.max(10_000));
    if start == 0 || max < start || max > 10_000_000 {
        return bad(format!(
            "--start-conns {start} and --max-conns {max}: need 1 <= start <= max <= 10000000"
        ));
    }
    Ok((
        Axis::Conns {
            rate_per_conn: rate,
        },
        start as f64,
        max as f64,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opts::{Command, Opts};
    use clap::Parser;

    fn search(args: &str) -> Search {
        let argv = format!("loadgen capacity --url ws://127.0.0.1:9/ws/chat {args}");
        match Opts::try_parse_from(argv.split_whitespace())
            .unwrap()
            .command
        {
            Some(Command::Capacity(o)) => Search::from_opts(&o).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_rate_step_spreads_the_rate_over_the_connections_after_a_warm_up() {
        let s = search("--conns 20 --start-rate 300 --warmup 2s --step-duration 5s");
        assert_eq!(s.axis, Axis::Rate { conns: 20 });
        assert_eq!((s.start, s.max), (300.0, 20_000.0));
        assert_eq!(s.shape(500.0), (20, 25.0));
        let p = s.plan(500.0);
        assert_eq!(p.rate, 25.0);
        assert_eq!(
            p.stages,
            [
                Stage {
                    duration: Duration::from_secs(2),
                    target: 20
                },
                Stage {
                    duration: Duration::from_secs(5),
                    target: 20
                }
            ]
        );
        // No per-run output files in a step; the default --timeout bounds the drain.
        let c = s.step_config(500.0);
        assert!(c.json.is_none() && c.html.is_none());
        assert_eq!(s.step_time(), Duration::from_secs(2 + 5 + 5 + 2));
    }

    #[test]
    fn a_connection_step_keeps_the_rate_and_counts_whole_connections() {
        let s = search("--start-conns 50 --max-conns 400 --rate 4 --step +50 --warmup 0s");
        assert_eq!(s.axis, Axis::Conns { rate_per_conn: 4.0 });
        assert_eq!(s.growth, Growth::Plus(50.0));
        assert_eq!(s.offered(150.0), 600.0);
        // No warm-up: all at once, the connection storm is the ramp-up.
        assert_eq!(s.plan(150.0).stages[0].duration, Duration::ZERO);
        assert_eq!(s.plan(150.0).max_conns(), 150);
        assert_eq!(Growth::Times(1.5).after(3.0, true), 5.0);
    }
}

//! `--workers W`: split the connections over W loadgen processes, each with
//! its own file-descriptor limit and runtime, and merge what they measured.
//!
//! The parent starts the node (if embedded), probes it, then starts W copies
//! of itself with `--worker-slot I/W`. Each worker owns the global slots
//! `s` with `s % W == I`, reports one JSON line per second on stdout and, at
//! the end, its histograms as (value, count) pairs: adding those into
//! histograms of the same bounds is exact, so the merge is lossless. Workers
//! wait for a "go" line on stdin after starting, so the parent can take
//! every process's memory baseline before the first connection; they exit if
//! stdin closes, so none outlives the parent.

use crate::config::{Config, Target};
use crate::engine::SecondSample;
use crate::error::Error;
use crate::monitor::{Monitor, Role};
use crate::stats::{Counts, Recorder, hist_from_pairs, hist_to_pairs};
use crate::{Outcome, hdrlog, node, report};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Lines a worker prints on stdout.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkerLine {
    Ready(u32),
    Second(u32, Box<WorkerSecond>),
    Result(u32, Box<WorkerResult>),
}

/// One second of one worker, with that second's latency histograms.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSecond {
    pub sample: SecondSample,
    /// Start of the interval, seconds after the worker's start.
    pub start_s: f64,
    pub corrected: Vec<(u64, u64)>,
    pub uncorrected: Vec<(u64, u64)>,
}

/// Everything a worker measured, losslessly.
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkerResult {
    pub counts: Counts,
    pub conn_time: Vec<(u64, u64)>,
    pub corrected: Vec<(u64, u64)>,
    pub uncorrected: Vec<(u64, u64)>,
    pub send_lag: Vec<(u64, u64)>,
    pub chunk_gap: Vec<(u64, u64)>,
    pub done_time: Vec<(u64, u64)>,
    #[serde(default)]
    pub failover: Vec<(u64, u64)>,
    #[serde(default)]
    pub recovery: Vec<(u64, u64)>,
    pub peak_open: i64,
    pub notes: Vec<(String, u64)>,
    pub abandoned: usize,
}

impl WorkerResult {
    fn recorder(&self) -> Recorder {
        Recorder {
            counts: self.counts,
            conn_time: hist_from_pairs(&self.conn_time),
            corrected: hist_from_pairs(&self.corrected),
            uncorrected: hist_from_pairs(&self.uncorrected),
            send_lag: hist_from_pairs(&self.send_lag),
            chunk_gap: hist_from_pairs(&self.chunk_gap),
            done_time: hist_from_pairs(&self.done_time),
            failover: hist_from_pairs(&self.failover),
            recovery: hist_from_pairs(&self.recovery),
            ..Recorder::default()
        }
    }
}

pub fn print_line(line: &WorkerLine) {
    if let Ok(s) = serde_json::to_string(line) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }
}

/// Worker side: report readiness, then wait for the parent's "go" (or exit
/// when the parent is gone).
pub async fn worker_wait_for_go(index: u32) -> Result<(), Error> {
    print_line(&WorkerLine::Ready(index));
    let go = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        matches!(std::io::stdin().read_line(&mut line), Ok(n) if n > 0)
    })
    .await
    .unwrap_or(false);
    if go {
        Ok(())
    } else {
        Err(Error::Worker("the parent loadgen went away".into()))
    }
}

/// Worker side: the final result line.
pub fn print_worker_result(
    index: u32,
    total: &Recorder,
    peak_open: i64,
    notes: &[(String, u64)],
    abandoned: usize,
) -> Result<(), Error> {
    let r = WorkerResult {
        counts: total.counts,
        conn_time: hist_to_pairs(&total.conn_time),
        corrected: hist_to_pairs(&total.corrected),
        uncorrected: hist_to_pairs(&total.uncorrected),
        send_lag: hist_to_pairs(&total.send_lag),
        chunk_gap: hist_to_pairs(&total.chunk_gap),
        done_time: hist_to_pairs(&total.done_time),
        failover: hist_to_pairs(&total.failover),
        recovery: hist_to_pairs(&total.recovery),
        peak_open,
        notes: notes.to_vec(),
        abandoned,
    };
    print_line(&WorkerLine::Result(index, Box::new(r)));
    Ok(())
}

/// The command line of worker `i`, rebuilt from the validated config.
fn worker_args(cfg: &Config, targets: &[Target], i: u32) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    let mut push = |k: &str, v: String| {
        a.push(k.to_string());
        a.push(v);
    };
    for t in targets {
        push("--url", t.url.clone());
    }
    let st = &cfg.plan.stages;
    if st.len() == 2 && st[0].duration.is_zero() {
        push("--conns", st[1].target.to_string());
        push("--duration", format!("{}ms", st[1].duration.as_millis()));
    } else {
        let s: Vec<String> = st
            .iter()
            .map(|s| format!("{}ms:{}", s.duration.as_millis(), s.target))
            .collect();
        push("--stages", s.join(","));
    }
    push("--rate", cfg.plan.rate.to_string());
    if let Some(cr) = cfg.plan.connect_rate {
        push("--connect-rate", cr.to_string());
    }
    push("--payload-size", cfg.payload_size.to_string());
    push("--timeout", format!("{}us", cfg.timeout.as_micros()));
    if let Some(m) = cfg.mode.to_possible_value() {
        push("--mode", m.get_name().to_string());
    }
    push(
        "--session-pattern",
        cfg.session_pattern.as_str().to_string(),
    );
    if let Some(c) = cfg.chat_chunks {
        push("--chat-chunks", c.to_string());
    }
    if let Some(c) = cfg.chat_interval_ms {
        push("--chat-interval-ms", c.to_string());
    }
    push(
        "--threads",
        (cfg.threads / cfg.workers as usize).max(1).to_string(),
    );
    if let (Some(f), Some(l)) = (cfg.source_ips.first(), cfg.source_ips.last()) {
        push("--source-ips", format!("{f}-{l}"));
    }
    push("--workers", cfg.workers.to_string());
    push("--worker-slot", format!("{i}/{}", cfg.workers));
    if cfg.wait_reply {
        a.push("--wait-reply".into());
    }
    if cfg.reconnect {
        a.push("--reconnect".into());
    }
    a.push("--quiet".into());
    a
}

struct Worker {
    child: Child,
    pid: u32,
}

/// Parent side: run the load over `cfg.workers` processes and merge.
pub async fn measure(
    cfg: &Arc<Config>,
    targets: Vec<Target>,
    node: Option<&node::NodeChild>,
    run_id: String,
    started_at: String,
) -> Result<Outcome, Error> {
    crate::probe(cfg, &targets, &run_id).await?;
    let exe = match &cfg.exe {
        Some(p) => p.clone(),
        None => {
            std::env::current_exe().map_err(|e| Error::io("finding loadgen's own executable", e))?
        }
    };
    let w = cfg.workers;
    let (tx, mut rx) = mpsc::channel::<WorkerLine>(1024);
    let mut workers = Vec::new();
    for i in 0..w {
        let mut child = Command::new(&exe)
            .args(worker_args(cfg, &targets, i))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("starting worker {i} ({})", exe.display()), e))?;
        let pid = child.id().unwrap_or(0);
        let out = child
            .stdout
            .take()
            .ok_or_else(|| Error::Worker("no stdout pipe".into()))?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(out).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if let Ok(m) = serde_json::from_str::<WorkerLine>(&l)
                    && tx.send(m).await.is_err()
                {
                    break;
                }
            }
        });
        workers.push(Worker { child, pid });
    }
    drop(tx);

    // Every worker is up before any connects: take the memory baselines.
    let mut ready = 0;
    let ready_by = Instant::now() + Duration::from_secs(15);
    while ready < w {
        match tokio::time::timeout_at(ready_by.into(), rx.recv()).await {
            Ok(Some(WorkerLine::Ready(_))) => ready += 1,
            Ok(Some(_)) => {}
            _ => {
                return Err(Error::Worker(format!(
                    "only {ready} of {w} workers started"
                )));
            }
        }
    }
    let mut mon = Monitor::new();
    let pollers = crate::watch_servers(cfg, &targets, node, &mut mon).await;
    for (i, wk) in workers.iter().enumerate() {
        let label = format!("loadgen worker {i}");
        mon.watch_share(Role::Loadgen, label, wk.pid, 1.0 / f64::from(w));
    }
    mon.baseline();
    let t0 = Instant::now();
    for wk in &mut workers {
        if let Some(stdin) = wk.child.stdin.as_mut() {
            let _ = stdin.write_all(b"go\n").await;
            let _ = stdin.flush().await;
        }
    }

    let progress = !cfg.quiet && std::io::stderr().is_terminal();
    let deadline = t0 + cfg.plan.total() + cfg.timeout + Duration::from_secs(20);
    let mut per_worker: Vec<Vec<WorkerSecond>> = vec![Vec::new(); w as usize];
    let mut latest_open = vec![0i64; w as usize];
    let mut results: Vec<Option<Box<WorkerResult>>> = (0..w).map(|_| None).collect();
    let mut node_samples: Vec<(Option<f64>, Option<u64>)> = Vec::new();
    let mut tick =
        tokio::time::interval_at((t0 + Duration::from_secs(1)).into(), Duration::from_secs(1));
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                Some(WorkerLine::Second(i, s)) => {
                    if let Some(v) = per_worker.get_mut(i as usize) {
                        latest_open[i as usize] = s.sample.open;
                        if v.len() < 100_000 {
                            v.push(*s);
                        }
                    }
                }
                Some(WorkerLine::Result(i, r)) => {
                    if let Some(slot) = results.get_mut(i as usize) {
                        *slot = Some(r);
                    }
                }
                Some(WorkerLine::Ready(_)) => {}
                None => break,
            },
            _ = tick.tick() => {
                let open: i64 = latest_open.iter().sum();
                mon.sample(open);
                node_samples.push((mon.last_node().map(|s| s.0), mon.last_node().map(|s| s.1)));
                if progress {
                    eprint!("\r[{:>5.0}s] open {open:>7} across {w} workers   ", t0.elapsed().as_secs_f64());
                }
            }
            _ = tokio::time::sleep_until(deadline.into()) => break,
        }
    }
    if progress {
        eprintln!();
    }
    for p in pollers {
        p.abort();
    }
    let mut warnings = Vec::new();
    for (i, wk) in workers.iter_mut().enumerate() {
        drop(wk.child.stdin.take());
        if tokio::time::timeout(Duration::from_secs(3), wk.child.wait())
            .await
            .is_err()
        {
            let _ = wk.child.start_kill();
            warnings.push(format!("worker {i} did not finish in time and was killed"));
        }
    }

    let mut total = Recorder::default();
    let mut peak_sum = 0;
    let mut notes: Vec<(String, u64)> = Vec::new();
    let mut abandoned = 0;
    let mut got = 0;
    for r in results.iter().flatten() {
        got += 1;
        total.merge(&r.recorder());
        peak_sum += r.peak_open;
        abandoned += r.abandoned;
        for (m, n) in &r.notes {
            if let Some(e) = notes.iter_mut().find(|(x, _)| x == m) {
                e.1 += n;
            } else if notes.len() < 8 {
                notes.push((m.clone(), *n));
            }
        }
    }
    if got < w {
        warnings.push(format!(
            "only {got} of {w} workers reported; the missing workers' messages are not in these figures"
        ));
    }
    if got == 0 {
        return Err(Error::Worker("no worker reported a result".into()));
    }
    if total.counts.conn_ok == 0 {
        let why = notes
            .first()
            .map_or("no attempt completed".to_string(), |(m, _)| m.clone());
        return Err(Error::Unreachable(format!(
            "no connection could be established during the run ({} attempts failed): {why}",
            total.counts.conn_failed
        )));
    }
    let merged = merge_series(&per_worker, &node_samples);
    let peak_open = merged
        .iter()
        .map(|m| m.sample.open)
        .max()
        .unwrap_or(peak_sum)
        .min(peak_sum);
    if let Some(p) = &cfg.hdr_log {
        let mut log = hdrlog::HdrLog::create(p, SystemTime::now())?;
        for m in &merged {
            crate::engine::IntervalSink::interval(
                &mut log,
                Duration::from_secs_f64(m.start_s.max(0.0)),
                Duration::from_secs_f64(m.sample.dt.max(0.0)),
                &m.corrected,
                &m.uncorrected,
            );
        }
        if let Some(e) = log.failed {
            warnings.push(format!("--hdr-log: {e}"));
        }
    }
    let series: Vec<SecondSample> = merged.into_iter().map(|m| m.sample).collect();
    let resources = mon.report();
    let host = mon.host();
    let mut rep = report::build(
        &total,
        report::Inputs {
            started_at,
            duration_s: t0.elapsed().as_secs_f64(),
            mode: cfg.mode,
            wait_reply: cfg.wait_reply,
            reconnect: cfg.reconnect,
            rate_per_conn: cfg.plan.rate,
            payload_size: cfg.payload_size,
            targets: targets.iter().map(|t| t.url.clone()).collect(),
            environment: crate::environment(cfg, node, &resources),
            workers: w,
            target_conns: cfg.plan.max_conns(),
            peak_open,
            resources,
            host,
            series,
            notes,
            thresholds: &cfg.thresholds,
            fail_on: cfg.fail_on,
            min_success_rate: cfg.min_success_rate,
            embedded: node.is_some(),
            abandoned,
            timeout_us: cfg.timeout.as_micros() as u64,
        },
    );
    rep.warnings.extend(warnings);
    Ok(Outcome {
        exit_code: rep.exit_code,
        report: Some(rep),
    })
}

/// One merged second of all workers.
struct MergedSecond {
    sample: SecondSample,
    start_s: f64,
    corrected: hdrhistogram::Histogram<u64>,
    uncorrected: hdrhistogram::Histogram<u64>,
}

/// Add the workers' seconds index by index (workers start together at the
/// parent's "go"): counts add, and the seconds' histograms add exactly, so
/// the merged per-second percentiles are exact.
fn merge_series(
    per_worker: &[Vec<WorkerSecond>],
    node: &[(Option<f64>, Option<u64>)],
) -> Vec<MergedSecond> {
    let n = per_worker.iter().map(Vec::len).max().unwrap_or(0);
    (0..n)
        .map(|j| {
            let mut m = MergedSecond {
                sample: SecondSample {
                    t: 0.0,
                    dt: 0.0,
                    open: 0,
                    sent: 0,
                    received: 0,
                    timeouts: 0,
                    errors: 0,
                    p50_us: 0,
                    p95_us: 0,
                    p99_us: 0,
                    node_cpu_pct: node.get(j).and_then(|x| x.0),
                    node_rss_bytes: node.get(j).and_then(|x| x.1),
                    loadgen_cpu_pct: None,
                },
                start_s: f64::MAX,
                corrected: crate::stats::new_hist(),
                uncorrected: crate::stats::new_hist(),
            };
            for w in per_worker {
                let Some(x) = w.get(j) else { continue };
                let (s, y) = (&mut m.sample, &x.sample);
                s.t = s.t.max(y.t);
                s.dt = s.dt.max(y.dt);
                s.open += y.open;
                s.sent += y.sent;
                s.received += y.received;
                s.timeouts += y.timeouts;
                s.errors += y.errors;
                s.loadgen_cpu_pct =
                    Some(s.loadgen_cpu_pct.unwrap_or(0.0) + y.loadgen_cpu_pct.unwrap_or(0.0));
                m.start_s = m.start_s.min(x.start_s);
                let _ = m.corrected.add(hist_from_pairs(&x.corrected));
                let _ = m.uncorrected.add(hist_from_pairs(&x.uncorrected));
            }
            if m.start_s == f64::MAX {
                m.start_s = 0.0;
            }
            let q = crate::stats::Summary::of(&m.corrected);
            (m.sample.p50_us, m.sample.p95_us, m.sample.p99_us) = (q.p50, q.p95, q.p99);
            m
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fmt_us;
    use crate::opts::Opts;
    use clap::Parser;

    #[test]
    fn worker_args_round_trip_through_the_parser() {
        let o = Opts::try_parse_from([
            "loadgen",
            "--url",
            "ws://127.0.0.1:9/ws/chat",
            "--stages",
            "1s:10,2s:4",
            "--rate",
            "2.5",
            "--timeout",
            "750ms",
            "--mode",
            "chat",
            "--wait-reply",
            "--workers",
            "3",
            "--chat-chunks",
            "2",
        ])
        .unwrap();
        let cfg = Config::from_opts(&o.load).unwrap();
        let targets = match &cfg.targets {
            crate::config::Targets::Urls(v) => v.clone(),
            _ => unreachable!(),
        };
        let args = worker_args(&cfg, &targets, 1);
        let w = Opts::try_parse_from(std::iter::once("loadgen".to_string()).chain(args)).unwrap();
        let wc = Config::from_opts(&w.load).unwrap();
        assert_eq!(wc.plan, cfg.plan);
        assert_eq!(wc.timeout, cfg.timeout);
        assert_eq!(wc.mode, cfg.mode);
        assert!(wc.wait_reply);
        assert_eq!(wc.worker_slot, Some((1, 3)));
        assert_eq!(wc.chat_chunks, Some(2));
    }

    #[test]
    fn series_merge_adds_counts_and_histograms_exactly() {
        let sec = |open, sent, lat: &[u64]| {
            let mut h = crate::stats::new_hist();
            for &v in lat {
                crate::stats::record(&mut h, v);
            }
            WorkerSecond {
                sample: SecondSample {
                    t: 1.0,
                    dt: 1.0,
                    open,
                    sent,
                    received: sent,
                    timeouts: 0,
                    errors: 0,
                    p50_us: 0,
                    p95_us: 0,
                    p99_us: 0,
                    node_cpu_pct: None,
                    node_rss_bytes: None,
                    loadgen_cpu_pct: Some(10.0),
                },
                start_s: 0.0,
                corrected: hist_to_pairs(&h),
                uncorrected: hist_to_pairs(&h),
            }
        };
        // Worker 0: 99 fast replies; worker 1: one slow reply.
        let fast = vec![100u64; 99];
        let m = merge_series(
            &[
                vec![sec(5, 99, &fast)],
                vec![sec(7, 1, &[90_000]), sec(7, 1, &[5])],
            ],
            &[],
        );
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].sample.open, m[0].sample.sent), (12, 100));
        assert_eq!(m[0].corrected.len(), 100);
        // p99 of the merged second is the fast value, not the slow worker's max.
        assert_eq!(fmt_us(m[0].sample.p99_us), "100us");
        assert!(m[0].corrected.max() >= 89_000);
        assert_eq!(m[0].sample.loadgen_cpu_pct, Some(20.0));
        assert_eq!(m[1].sample.open, 7);
    }
}

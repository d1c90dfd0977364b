//! The controller's side during the run: set the common start instant,
//! merge the agents' seconds as they arrive (`workers::merge`, exactly as
//! for local workers), and give up on an agent that dies or stalls without
//! waiting for it, keeping what it had sent.
//!
//! A lost agent's figures are the sum of the seconds it sent: its counts
//! and its reply, connection and send-lag histograms up to its last
//! second. Its messages still unanswered then count as in flight, so the
//! run's accounting still balances, and the run fails (exit 1).

use crate::agents::controller::Agents;
use crate::agents::keys::{self, BEAT};
use crate::agents::transport::wall_us;
use crate::engine::collect::SecondSink;
use crate::engine::ctx::merge_notes;
use crate::engine::measured::{Measured, Part};
use crate::engine::stats::Recorder;
use crate::error::Error;
use crate::workers::exchange::{FromWorker, SecondRecord, ToWorker, WorkerResult};
use crate::workers::merge::SecondMerger;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// From `GoAt` to the start instant: every agent reads its inbox by then.
const LEAD: Duration = Duration::from_secs(2);
/// An agent that sends nothing this long is given up (it sends every second).
const STALL: Duration = Duration::from_secs(20);

/// What the controller knows of one agent during the run.
struct Book {
    last_heard: Instant,
    /// The sum of its seconds (a lost agent's figures).
    partial: Recorder,
    result: Option<Box<WorkerResult>>,
    /// Why it was given up, with when it was last heard and when it was
    /// given up (seconds into the run).
    lost: Option<(f64, String)>,
}

impl Book {
    fn ended(&self) -> bool {
        self.result.is_some() || self.lost.is_some()
    }

    fn add_second(&mut self, s: &SecondRecord) {
        let sec = s.to_second();
        self.partial.counts.add(&sec.delta);
        for (a, b) in [
            (&mut self.partial.corrected, &sec.corrected),
            (&mut self.partial.uncorrected, &sec.uncorrected),
            (&mut self.partial.conn_time, &sec.conn_time),
            (&mut self.partial.send_lag, &sec.send_lag),
        ] {
            let _ = a.add(b);
        }
    }
}

/// Start the agents together, feed the merged seconds to `sinks`, merge
/// their results.
pub async fn measure(mut a: Agents, sinks: &mut [&mut dyn SecondSink]) -> Result<Measured, Error> {
    let out = run(&a, sinks).await;
    a.clean_up().await;
    out
}

async fn run(a: &Agents, sinks: &mut [&mut dyn SecondSink]) -> Result<Measured, Error> {
    let n = a.agents.len();
    let interrupted = Arc::new(AtomicBool::new(false));
    let ctrl_c = tokio::spawn({
        let flag = interrupted.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::Relaxed);
            }
        }
    });
    let start_us = a.bus.time_us().await.map_err(Error::Agents)? + LEAD.as_micros() as u64;
    // The same instant on this machine's monotonic clock.
    let lead_us = (a.clock.local_us(start_us) - wall_us()).clamp(0, LEAD.as_micros() as i64 * 2);
    let t0 = Instant::now() + Duration::from_micros(lead_us as u64);
    for t in &a.agents {
        a.bus
            .post(&keys::inbox(&t.id), &ToWorker::GoAt { unix_us: start_us })
            .await
            .map_err(Error::Agents)?;
    }
    let deadline = t0 + a.settings.plan.total() + a.settings.timeout + Duration::from_secs(20);
    let mut books: Vec<Book> = (0..n)
        .map(|_| Book {
            last_heard: t0.max(Instant::now()),
            partial: Recorder::default(),
            result: None,
            lost: None,
        })
        .collect();
    let mut streams: Vec<(String, String)> = a.agents.iter().map(|t| t.stream.clone()).collect();
    let mut merger = SecondMerger::new(n);
    let mut max_open = None::<i64>;
    let mut warnings = Vec::new();
    let mut stopping = false;
    let mut check_at = Instant::now() + BEAT;
    let mut emit = |merger: &mut SecondMerger, flush: bool| {
        while let Some(s) = merger.next(flush) {
            max_open = Some(max_open.map_or(s.open, |m: i64| m.max(s.open)));
            for sink in sinks.iter_mut() {
                sink.second(&s);
            }
        }
    };
    while books.iter().any(|b| !b.ended()) {
        if interrupted.load(Ordering::Relaxed) && !stopping {
            stopping = true;
            eprintln!("\nloadgen: interrupted; stopping the agents");
            for t in &a.agents {
                let _ = a.bus.post(&keys::inbox(&t.id), &ToWorker::Stop).await;
            }
        }
        let got = match a.bus.read::<FromWorker>(&mut streams).await {
            Ok(g) => g,
            Err(e) => {
                if Instant::now() >= deadline {
                    return Err(Error::Agents(e));
                }
                tokio::time::sleep(BEAT / 4).await;
                Vec::new()
            }
        };
        for (i, m) in got {
            let b = &mut books[i];
            if b.lost.is_some() {
                continue;
            }
            b.last_heard = Instant::now();
            match m {
                Ok(FromWorker::Second(s)) => {
                    b.add_second(&s);
                    merger.push(i, *s);
                }
                Ok(FromWorker::Result(r)) => {
                    b.result = Some(r);
                    merger.end(i);
                }
                Ok(_) => {}
                Err(e) => warnings.push(format!("agent {}: {e}", a.agents[i].hello.name)),
            }
        }
        if Instant::now() >= check_at {
            check_at = Instant::now() + BEAT;
            let lost = find_lost(a, &books, deadline).await;
            for (i, why) in lost {
                let b = &mut books[i];
                let at = b.last_heard.saturating_duration_since(t0).as_secs_f64();
                let now = t0.elapsed().as_secs_f64();
                let why =
                    format!("{why}; last heard {at:.1} s into the run, given up at {now:.1} s");
                eprintln!("loadgen: agent {} lost: {why}", a.agents[i].hello.name);
                b.lost = Some((at, why));
                merger.end(i);
                let _ = a
                    .bus
                    .post(&keys::inbox(&a.agents[i].id), &ToWorker::Stop)
                    .await;
            }
        }
        emit(&mut merger, false);
    }
    emit(&mut merger, true);
    ctrl_c.abort();
    warnings.truncate(8);
    Ok(merged(a, books, t0.elapsed(), max_open, warnings))
}

/// Agents to give up now, with why.
async fn find_lost(a: &Agents, books: &[Book], deadline: Instant) -> Vec<(usize, String)> {
    let running: Vec<usize> = (0..books.len()).filter(|&i| !books[i].ended()).collect();
    let mut p = redis::pipe();
    for &i in &running {
        p.cmd("EXISTS").arg(keys::agent_alive(&a.agents[i].id));
    }
    let alive: Vec<bool> = a
        .bus
        .query_pipe(&p)
        .await
        .unwrap_or_else(|_| vec![true; running.len()]);
    let mut out = Vec::new();
    for (k, &i) in running.iter().enumerate() {
        let quiet = books[i].last_heard.elapsed();
        if !alive.get(k).copied().unwrap_or(true) {
            out.push((
                i,
                "its heartbeat stopped (the process died or lost Redis)".into(),
            ));
        } else if quiet > STALL {
            out.push((i, format!("it sent nothing for {} s", quiet.as_secs())));
        } else if Instant::now() >= deadline {
            out.push((i, "it did not finish in time".into()));
        }
    }
    out
}

/// The run's figures from every agent's result, or its seconds if lost.
fn merged(
    a: &Agents,
    books: Vec<Book>,
    elapsed: Duration,
    max_open: Option<i64>,
    warnings: Vec<String>,
) -> Measured {
    let mut m = Measured {
        elapsed,
        warnings,
        ..Measured::default()
    };
    let mut peak_sum = 0;
    for (i, (t, b)) in a.agents.iter().zip(books).enumerate() {
        let (rec, lost) = match (b.result, b.lost) {
            (Some(r), _) => {
                peak_sum += r.peak_open;
                m.abandoned += r.abandoned;
                merge_notes(&mut m.notes, &r.notes);
                (r.recorder(), None)
            }
            (None, lost) => {
                let mut rec = b.partial;
                let c = &mut rec.counts;
                // Unanswered when the agent was lost: their fate is unknown.
                c.in_flight += c
                    .sent
                    .saturating_sub(c.received + c.timeouts + c.lost + c.in_flight);
                let (at, why) = lost.unwrap_or((elapsed.as_secs_f64(), "no result".into()));
                m.warnings.push(format!(
                    "AGENT LOST: {} (agent {} of {}, host {}): {why}. \
                     Its figures up to its last second are kept; its unanswered messages count as in flight",
                    t.hello.name,
                    i,
                    a.agents.len(),
                    t.hello.host
                ));
                (rec, Some((at, why)))
            }
        };
        m.total.merge(&rec);
        m.parts.push(Part {
            index: i as u64,
            name: t.hello.name.clone(),
            host: t.hello.host.clone(),
            clock_offset_us: t.hello.clock_offset_us,
            clock_rtt_us: t.hello.clock_rtt_us,
            source_ips: t.source_ips.clone(),
            conns: t.conns,
            counts: rec.counts,
            lost_at_s: lost.as_ref().map(|l| l.0),
            lost_why: lost.map(|l| l.1),
        });
    }
    // The merged seconds count a lost agent's connections too.
    m.peak_open = max_open.unwrap_or(peak_sum);
    m
}

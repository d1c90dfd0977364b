//! The `--workers W` measuring backend: W loadgen processes share the
//! connections (each with its own file-descriptor limit and runtime), and
//! the parent merges what they measured into one [`Measured`].
//!
//! The parent starts W copies of itself as `loadgen __worker`, hands each
//! its [`Assignment`] as data, and waits until all are ready, so the run
//! path can take every process's memory baseline before the first
//! connection. Then `Go`; each worker streams its seconds and finally its
//! result. Workers are killed if the parent drops them.

use crate::config::target::Target;
use crate::engine::collect::SecondSink;
use crate::engine::ctx::merge_notes;
use crate::engine::measured::Measured;
use crate::engine::settings::{Settings, Share};
use crate::engine::stats::Recorder;
use crate::error::Error;
use crate::workers::exchange::{Assignment, FromWorker, ToWorker, WorkerResult};
use crate::workers::merge::SecondMerger;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// Longest wait for every worker to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Longest line accepted from a worker (a second's histograms are a few KiB).
const MAX_LINE: usize = 4 << 20;

struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
}

/// Started, ready workers.
pub struct Workers {
    workers: Vec<Worker>,
    rx: mpsc::Receiver<(usize, Option<FromWorker>)>,
    settings: Settings,
}

/// Start `count` workers running `exe`, each with its share of the run.
pub async fn spawn(
    exe: &Path,
    count: u32,
    settings: &Settings,
    targets: &[Target],
    run_id: &str,
    threads: usize,
) -> Result<Workers, Error> {
    let (tx, mut rx) = mpsc::channel(1024);
    let mut workers = Vec::new();
    for i in 0..count {
        let mut child = Command::new(exe)
            .arg("__worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::io(format!("starting worker {i} ({})", exe.display()), e))?;
        let pid = child.id().unwrap_or(0);
        let out = child.stdout.take();
        let mut stdin = child.stdin.take();
        let (Some(out), Some(pipe)) = (out, stdin.as_mut()) else {
            return Err(Error::Worker(format!("worker {i} has no pipes")));
        };
        let assignment = Assignment {
            settings: settings.clone(),
            targets: targets.to_vec(),
            run_id: run_id.to_string(),
            share: Share {
                index: u64::from(i),
                of: u64::from(count),
            },
            threads: (threads / count as usize).max(1),
        };
        write(pipe, &ToWorker::Start(Box::new(assignment)))
            .await
            .map_err(|e| Error::io(format!("sending worker {i} its assignment"), e))?;
        tokio::spawn(read_worker(i as usize, out, tx.clone()));
        workers.push(Worker { child, stdin, pid });
    }
    drop(tx);
    let mut ready = 0;
    let ready_by = Instant::now() + READY_TIMEOUT;
    while ready < count {
        match tokio::time::timeout_at(ready_by.into(), rx.recv()).await {
            Ok(Some((_, Some(FromWorker::Ready)))) => ready += 1,
            Ok(Some((_, Some(_)))) => {}
            _ => {
                return Err(Error::Worker(format!(
                    "only {ready} of {count} workers started"
                )));
            }
        }
    }
    Ok(Workers {
        workers,
        rx,
        settings: settings.clone(),
    })
}

/// Forward worker `i`'s messages; `None` once its stdout closes.
async fn read_worker(
    i: usize,
    out: tokio::process::ChildStdout,
    tx: mpsc::Sender<(usize, Option<FromWorker>)>,
) {
    let mut lines = BufReader::new(out).lines();
    while let Ok(Some(l)) = lines.next_line().await {
        if l.len() > MAX_LINE {
            break;
        }
        if let Ok(m) = serde_json::from_str::<FromWorker>(&l)
            && tx.send((i, Some(m))).await.is_err()
        {
            return;
        }
    }
    let _ = tx.send((i, None)).await;
}

async fn write(pipe: &mut ChildStdin, m: &ToWorker) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(m).map_err(std::io::Error::other)?;
    line.push(b'\n');
    pipe.write_all(&line).await?;
    pipe.flush().await
}

impl Workers {
    /// The workers' process ids, to monitor.
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().map(|w| w.pid).collect()
    }

    /// Start the run, feed the merged seconds to `sinks`, merge the results.
    pub async fn measure(mut self, sinks: &mut [&mut dyn SecondSink]) -> Result<Measured, Error> {
        let count = self.workers.len();
        let t0 = Instant::now();
        for w in &mut self.workers {
            if let Some(p) = w.stdin.as_mut() {
                let _ = write(p, &ToWorker::Go).await;
            }
        }
        let deadline =
            t0 + self.settings.plan.total() + self.settings.timeout + Duration::from_secs(20);
        let mut merger = SecondMerger::new(count);
        let mut results: Vec<Option<Box<WorkerResult>>> = (0..count).map(|_| None).collect();
        let mut max_open = None::<i64>;
        let mut emit = |merger: &mut SecondMerger, flush: bool, max_open: &mut Option<i64>| {
            while let Some(s) = merger.next(flush) {
                *max_open = Some(max_open.map_or(s.open, |m| m.max(s.open)));
                for sink in sinks.iter_mut() {
                    sink.second(&s);
                }
            }
        };
        let mut open_pipes = count;
        let mut stopping = false;
        while open_pipes > 0 {
            tokio::select! {
                m = self.rx.recv() => match m {
                    Some((i, Some(FromWorker::Second(s)))) => merger.push(i, *s),
                    Some((i, Some(FromWorker::Result(r)))) => {
                        merger.end(i);
                        if let Some(slot) = results.get_mut(i) {
                            *slot = Some(r);
                        }
                    }
                    Some((_, Some(FromWorker::Ready | FromWorker::Hello(_)))) => {}
                    Some((i, None)) => {
                        merger.end(i);
                        open_pipes -= 1;
                    }
                    None => break,
                },
                _ = tokio::signal::ctrl_c(), if !stopping => {
                    stopping = true;
                    eprintln!("\nloadgen: interrupted; stopping the workers");
                    for w in &mut self.workers {
                        if let Some(p) = w.stdin.as_mut() {
                            let _ = write(p, &ToWorker::Stop).await;
                        }
                    }
                }
                _ = tokio::time::sleep_until(deadline.into()) => break,
            }
            emit(&mut merger, false, &mut max_open);
        }
        emit(&mut merger, true, &mut max_open);
        let elapsed = t0.elapsed();
        let mut warnings = Vec::new();
        for (i, w) in self.workers.iter_mut().enumerate() {
            drop(w.stdin.take());
            if tokio::time::timeout(Duration::from_secs(3), w.child.wait())
                .await
                .is_err()
            {
                let _ = w.child.start_kill();
                warnings.push(format!("worker {i} did not finish in time and was killed"));
            }
        }
        let mut m = Measured {
            total: Recorder::default(),
            elapsed,
            warnings,
            ..Measured::default()
        };
        let mut got = 0;
        let mut peak_sum = 0;
        for r in results.iter().flatten() {
            got += 1;
            m.total.merge(&r.recorder());
            peak_sum += r.peak_open;
            m.abandoned += r.abandoned;
            merge_notes(&mut m.notes, &r.notes);
        }
        if got == 0 {
            return Err(Error::Worker("no worker reported a result".into()));
        }
        if got < count {
            m.warnings.push(format!(
                "only {got} of {count} workers reported; the missing workers' messages are not in these figures"
            ));
        }
        // The workers' peaks need not coincide: the merged seconds tell.
        m.peak_open = max_open.unwrap_or(peak_sum).min(peak_sum);
        Ok(m)
    }
}

//! A worker process (`loadgen __worker`): reads its assignment from stdin,
//! says it is ready, waits for `Go`, runs the local engine, and streams its
//! seconds and its result to stdout as [`FromWorker`] lines.
//!
//! Its stdin is the parent's pipe: when it closes, the parent is gone and
//! the worker stops (before `Go` at once, during the run like a Ctrl-C), so
//! no worker outlives its parent by more than a drain.

use crate::engine::backend;
use crate::engine::collect::{Second, SecondSink};
use crate::engine::ctx::RunCtx;
use crate::error::Error;
use crate::limits;
use crate::net::dial::Dialer;
use crate::workers::exchange::{Assignment, FromWorker, SecondRecord, ToWorker, WorkerResult};
use std::io::{BufRead, Write};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Longest line accepted from the parent (an assignment is a few KiB).
const MAX_LINE: usize = 1 << 20;

/// Run as a worker; returns the exit code.
pub fn serve() -> Result<u8, Error> {
    limits::raise_nofile();
    let (first, rest) = read_messages()?;
    let Some(ToWorker::Start(a)) = first else {
        return Err(Error::Worker(
            "the first message from the parent was not the assignment".into(),
        ));
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the worker runtime", e))?;
    let out = rt.block_on(run(*a, rest));
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    out.map(|()| 0)
}

/// The first message, read here; the rest arrive on the channel from a
/// reader thread (which ends, closing the channel, at EOF).
fn read_messages() -> Result<(Option<ToWorker>, mpsc::Receiver<ToWorker>), Error> {
    let mut stdin = std::io::stdin().lock();
    let first = read_one(&mut stdin)?;
    drop(stdin);
    let (tx, rx) = mpsc::channel(8);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        while let Ok(Some(m)) = read_one(&mut stdin) {
            if tx.blocking_send(m).is_err() {
                break;
            }
        }
    });
    Ok((first, rx))
}

/// One message line; `None` at EOF.
fn read_one<R: BufRead>(r: &mut R) -> Result<Option<ToWorker>, Error> {
    let mut line = String::new();
    let n = std::io::Read::take(r, MAX_LINE as u64)
        .read_line(&mut line)
        .map_err(|e| Error::io("reading from the parent", e))?;
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_str(&line)
        .map(Some)
        .map_err(|e| Error::Worker(format!("a message from the parent is not valid: {e}")))
}

async fn run(a: Assignment, mut from_parent: mpsc::Receiver<ToWorker>) -> Result<(), Error> {
    send(&FromWorker::Ready);
    loop {
        match from_parent.recv().await {
            Some(ToWorker::Go) => break,
            Some(_) => {}
            None => return Err(Error::Worker("the parent loadgen went away".into())),
        }
    }
    let tls = a.targets.iter().any(|t| t.tls);
    let dialer = Dialer::new(&a.settings.dial, tls).map_err(Error::Worker)?;
    let settings = Arc::new(a.settings);
    let ctx = Arc::new(
        RunCtx::new(settings, a.targets, a.run_id, a.share, dialer).map_err(Error::Worker)?,
    );
    let stop = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            // `Stop`, or the pipe closing: the parent wants the run over.
            while let Some(m) = from_parent.recv().await {
                if matches!(m, ToWorker::Stop) {
                    break;
                }
            }
            ctx.abort();
        }
    });
    let mut pipe = Pipe;
    let measured = backend::measure(ctx, &mut [&mut pipe]).await;
    stop.abort();
    send(&FromWorker::Result(Box::new(WorkerResult::from(&measured))));
    Ok(())
}

/// Each second goes to the parent as it ends.
struct Pipe;

impl SecondSink for Pipe {
    fn second(&mut self, s: &Second) {
        send(&FromWorker::Second(Box::new(SecondRecord::from(s))));
    }
}

fn send(m: &FromWorker) {
    if let Ok(s) = serde_json::to_string(m) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{s}");
        let _ = out.flush();
    }
}

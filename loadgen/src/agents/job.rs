//! One run on an agent: introduce itself (name, clock offset), wait for the
//! common start instant, run its share with the local engine, and stream
//! every second and the result to the controller.
//!
//! From the assignment on, a `Beat` thread keeps the agent's heartbeat and
//! watches the controller's; beside the engine one task reads the inbox for
//! `Stop`. When the controller's heartbeat is gone (`keys::ALIVE_TTL`) the
//! agent stops, so no agent loads a target for a run nobody collects.

use crate::agents::beat::Beat;
use crate::agents::identity::Me;
use crate::agents::keys::{self, BEAT, IDLE};
use crate::agents::transport::{Bus, wall_us};
use crate::engine::backend;
use crate::engine::collect::{Second, SecondSink};
use crate::engine::ctx::RunCtx;
use crate::net::dial::Dialer;
use crate::report::hdrlog::HdrLog;
use crate::workers::exchange::{
    AgentHello, Assignment, FromWorker, SecondRecord, ToWorker, WorkerResult,
};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// Longest wait from `Ready` to the start instant's message.
const GO_TIMEOUT: Duration = Duration::from_secs(30);
/// Latest start instant accepted (a wrong clock must not park an agent).
const MAX_LEAD: Duration = Duration::from_secs(60);
/// Seconds queued for the coordinator; past it a second is dropped (and
/// counted) rather than letting a slow Redis grow the agent's memory.
const QUEUE: usize = 1024;

/// Run `a`; `Ok` says how it ended.
pub async fn run(
    bus: &Bus,
    me: &Me,
    a: Assignment,
    inbox_last: &mut String,
    hdr_log: Option<&Path>,
) -> Result<String, String> {
    let beat = Arc::new(Beat::start(
        bus.url(),
        keys::agent_alive(&me.id),
        Some(keys::run_alive(&a.run_id)),
    ));
    let _: () = bus.run(redis::cmd("ZREM").arg(IDLE).arg(&me.id)).await?;
    let out = keys::from_agent(&a.run_id, a.share.index);
    let clock = bus.clock().await?;
    let hello = AgentHello {
        name: me.name.clone(),
        host: me.host.clone(),
        clock_offset_us: clock.offset_us,
        clock_rtt_us: clock.rtt_us,
    };
    bus.post(&out, &FromWorker::Hello(Box::new(hello))).await?;
    bus.post(&out, &FromWorker::Ready).await?;
    let mut inbox = [(keys::inbox(&me.id), inbox_last.clone())];
    let go = wait_for_go(bus, &beat, &mut inbox).await;
    inbox_last.clone_from(&inbox[0].1);
    let Some(unix_us) = go? else {
        return Ok("was stopped before it started".into());
    };
    let wait_us = clock.local_us(unix_us) - wall_us();
    if wait_us > 0 {
        tokio::time::sleep(Duration::from_micros(wait_us as u64).min(MAX_LEAD)).await;
    }
    let tls = a.targets.iter().any(|t| t.tls);
    let dialer = Dialer::new(&a.settings.dial, tls)?;
    let ctx = Arc::new(RunCtx::new(
        Arc::new(a.settings),
        a.targets,
        a.run_id.clone(),
        a.share,
        dialer,
    )?);
    let stopped_by = Arc::new(std::sync::Mutex::new(None::<String>));
    let finished = Arc::new(AtomicBool::new(false));
    let control = tokio::spawn(control(
        Control {
            bus: bus.clone(),
            me: me.clone(),
            beat: beat.clone(),
            ctx: ctx.clone(),
            stopped_by: stopped_by.clone(),
            finished: finished.clone(),
        },
        inbox[0].clone(),
    ));
    let (tx, rx) = mpsc::channel(QUEUE);
    let sender = tokio::spawn(forward(bus.clone(), out.clone(), rx));
    let dropped = Arc::new(AtomicU64::new(0));
    let mut stream = Stream {
        tx,
        dropped: dropped.clone(),
    };
    let mut hdr = match hdr_log {
        Some(p) => Some(HdrLog::create(p, SystemTime::now()).map_err(|e| e.to_string())?),
        None => None,
    };
    let mut measured = {
        let mut sinks: Vec<&mut dyn SecondSink> = vec![&mut stream];
        if let Some(h) = hdr.as_mut() {
            sinks.push(h);
        }
        backend::measure(ctx, &mut sinks).await
    };
    drop(stream);
    drop(hdr);
    finished.store(true, Ordering::Relaxed);
    let last_inbox = control.await.ok();
    if let Some(l) = last_inbox {
        inbox_last.clone_from(&l);
    }
    // Every second goes out before the result, in order.
    let _ = tokio::time::timeout(Duration::from_secs(10), sender).await;
    let n = dropped.load(Ordering::Relaxed);
    if n > 0 {
        measured.warnings.push(format!(
            "agent {}: {n} seconds could not be queued for the coordinator",
            me.name
        ));
    }
    bus.post(
        &out,
        &FromWorker::Result(Box::new(WorkerResult::from(&measured))),
    )
    .await?;
    let why = stopped_by.lock().map(|g| g.clone()).unwrap_or(None);
    Ok(why.map_or_else(|| "finished".to_string(), |w| format!("stopped: {w}")))
}

/// `Some(start)` at `GoAt`, `None` at `Stop`; an error when the controller
/// goes away or says nothing in time.
async fn wait_for_go(
    bus: &Bus,
    beat: &Beat,
    inbox: &mut [(String, String); 1],
) -> Result<Option<u64>, String> {
    let until = Instant::now() + GO_TIMEOUT;
    while Instant::now() < until {
        if let Some(gone) = beat.gone() {
            return Err(gone);
        }
        for (_, m) in bus.read::<ToWorker>(inbox).await? {
            match m {
                Ok(ToWorker::GoAt { unix_us }) => return Ok(Some(unix_us)),
                Ok(ToWorker::Stop) => return Ok(None),
                _ => {}
            }
        }
    }
    Err(format!(
        "no start instant within {} s of Ready",
        GO_TIMEOUT.as_secs()
    ))
}

/// What the control task shares with the run.
struct Control {
    bus: Bus,
    me: Me,
    /// The heartbeats: ours, and our view of the controller's.
    beat: Arc<Beat>,
    ctx: Arc<RunCtx>,
    /// Why the run was stopped early, if it was.
    stopped_by: Arc<std::sync::Mutex<Option<String>>>,
    /// The engine is done: the control task ends.
    finished: Arc<AtomicBool>,
}

/// During the run: beat, obey `Stop`, stop when the controller is gone.
/// Returns the inbox's last id.
async fn control(c: Control, inbox: (String, String)) -> String {
    let Control {
        bus,
        me,
        beat,
        ctx,
        stopped_by,
        finished,
    } = c;
    let mut inbox = [inbox];
    let mut why = None;
    while !ctx.is_aborted() && !finished.load(Ordering::Relaxed) {
        if let Some(gone) = beat.gone() {
            why = Some(gone);
            break;
        }
        match bus.read::<ToWorker>(&mut inbox).await {
            Ok(msgs) => {
                if msgs.iter().any(|(_, m)| matches!(m, Ok(ToWorker::Stop))) {
                    why = Some("the controller said stop".to_string());
                    break;
                }
            }
            // A slow or lost Redis: the beat thread tells when it is gone.
            Err(_) => tokio::time::sleep(BEAT / 4).await,
        }
    }
    if let Some(w) = why {
        eprintln!("loadgen agent {}: stopping: {w}", me.name);
        if let Ok(mut g) = stopped_by.lock() {
            *g = Some(w);
        }
        ctx.abort();
    }
    let [(_, last)] = inbox;
    last
}

/// The seconds on their way to the coordinator, in order.
struct Stream {
    tx: mpsc::Sender<SecondRecord>,
    dropped: Arc<AtomicU64>,
}

impl SecondSink for Stream {
    fn second(&mut self, s: &Second) {
        if self.tx.try_send(SecondRecord::from(s)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn forward(bus: Bus, out: String, mut rx: mpsc::Receiver<SecondRecord>) {
    let mut failed = false;
    while let Some(s) = rx.recv().await {
        if let Err(e) = bus.post(&out, &FromWorker::Second(Box::new(s))).await
            && !failed
        {
            failed = true;
            eprintln!("loadgen agent: a second could not reach the coordinator: {e}");
        }
    }
}

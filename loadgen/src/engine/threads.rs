//! The threads connection slots run on: one single-threaded tokio runtime
//! per thread (thread per core), each slot pinned to one of them.
//!
//! Why not the process's multi-threaded runtime: there a timer or a socket
//! event woken on one worker is often run by the other, so every message
//! paid futex wake-ups, parking and cross-thread context switches (a
//! quarter of loadgen's CPU at 1,000 x 10/s in `perf`), work that tcp_floor's
//! single epoll loop never does (issue 12). On its own runtime a slot's
//! timers, socket readiness and wakes stay on one thread, which sleeps in
//! its own `epoll_wait` when idle. Slots are spread evenly by number, so
//! the threads share the load without stealing work from each other.
//! Each thread also drives its own `pacer`, which wakes its slots when
//! their messages are due.

use crate::engine::pacer;
use std::future::Future;
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

/// Running slot threads; dropping this ends them (their slots with them).
pub struct SlotThreads {
    handles: Vec<Handle>,
    /// Dropped to tell each thread to stop.
    _stop: Vec<oneshot::Sender<()>>,
}

impl SlotThreads {
    /// Start `n` threads (at least one), each with its own runtime. If the
    /// system refuses a thread or a runtime, the slots run on the caller's
    /// runtime instead, as they did before these threads existed.
    pub fn start(n: usize) -> SlotThreads {
        let mut handles = Vec::new();
        let mut stop = Vec::new();
        for i in 0..n.max(1) {
            match start_one(i) {
                Ok((h, s)) => {
                    handles.push(h);
                    stop.push(s);
                }
                Err(e) => {
                    eprintln!("loadgen: slot thread {i} not started ({e}); using the main runtime");
                    return SlotThreads {
                        handles: Vec::new(),
                        _stop: Vec::new(),
                    };
                }
            }
        }
        SlotThreads {
            handles,
            _stop: stop,
        }
    }

    /// Threads started (0: the slots run on the caller's runtime).
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Spawn slot `local`'s task into `set`, on the thread that slot belongs to.
    pub fn spawn<F>(&self, set: &mut JoinSet<()>, local: u64, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        if self.handles.is_empty() {
            set.spawn(task);
        } else {
            let h = &self.handles[(local % self.handles.len() as u64) as usize];
            set.spawn_on(task, h);
        }
    }
}

/// One thread with a current-thread runtime that runs until `stop` drops.
fn start_one(i: usize) -> std::io::Result<(Handle, oneshot::Sender<()>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("loadgen-slots-{i}"))
        .spawn(move || {
            // Either a stop or the sender dropped: both end the thread, and
            // the runtime (with any task still on it) is dropped here, off
            // every async context.
            // The thread's pacer is driven beside its slots, on this thread.
            rt.block_on(async {
                tokio::select! {
                    _ = stopped => {}
                    _ = pacer::drive() => {}
                }
            });
        })?;
    Ok((handle, stop))
}

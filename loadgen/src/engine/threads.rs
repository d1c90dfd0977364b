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
use server::placement::{self, Placement};
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
    /// With `pin: Some(first)`, thread `i` runs on the `first + i`-th
    /// allowed CPU (as loop `i` does), so the handshakes it sends arrive
    /// on that CPU.
    pub fn start(n: usize, pin: Option<usize>) -> SlotThreads {
        let mut handles = Vec::new();
        let mut stop = Vec::new();
        let n = n.max(1);
        let placement = Placement::new(pin, n);
        for i in 0..n {
            match start_one(i, placement.cpu(i)) {
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
fn start_one(i: usize, cpu: Option<usize>) -> std::io::Result<(Handle, oneshot::Sender<()>)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    std::thread::Builder::new()
        .name(format!("loadgen-slots-{i}"))
        .spawn(move || {
            if let Some(cpu) = cpu
                && let Err(e) = placement::pin_current(cpu)
            {
                eprintln!("loadgen: slot thread {i} runs unpinned ({e})");
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Where slot `local`'s task runs: the CPUs its thread may use.
    async fn cpus_of_slot(threads: &SlotThreads, local: u64) -> Vec<usize> {
        let (tx, rx) = oneshot::channel();
        let mut set = JoinSet::new();
        threads.spawn(&mut set, local, async move {
            let _ = tx.send(placement::allowed_cpus());
        });
        rx.await.expect("the slot task ran")
    }

    #[tokio::test]
    async fn pinned_slot_threads_run_on_one_cpu_each_and_unpinned_ones_float() {
        let cpus = placement::allowed_cpus();
        let n = cpus.len() + 1;
        let pinned = SlotThreads::start(n, Some(0));
        for local in 0..n as u64 {
            let want = cpus[local as usize % cpus.len()];
            assert_eq!(cpus_of_slot(&pinned, local).await, [want], "slot {local}");
        }
        let floating = SlotThreads::start(2, None);
        assert_eq!(cpus_of_slot(&floating, 1).await, cpus);
        // A second worker's threads start on the next CPU.
        let second = SlotThreads::start(1, Some(1));
        assert_eq!(cpus_of_slot(&second, 0).await, [cpus[1 % cpus.len()]]);
    }
}

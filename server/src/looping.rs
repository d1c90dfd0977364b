//! What a loop thread and the async side share: a stop flag raised with a
//! wake. The base of the workspace's two kinds of epoll loop, wsnode's
//! connection loops (`ws::steady`) and loadgen's steady state
//! (`loadgen/src/engine/steady`, which links this crate).
//!
//! A loop is a thread blocked in its own `epoll_wait`, so it cannot await
//! a shutdown: the async side holds a [`StopOnDrop`] in a task, and its end
//! (a shutdown seen, the task aborted, its runtime gone) raises the flag
//! and wakes the loop, which reads the flag once per turn. The loop thread
//! holds a handle on its waker too: closing a waker's eventfd drops a wake
//! not yet taken.

use mio::Waker;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The loop's side: raised once, never lowered.
#[derive(Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn raised(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The async side: raises the flag and wakes the loop when dropped.
pub struct StopOnDrop {
    flag: StopFlag,
    waker: Arc<Waker>,
}

impl StopOnDrop {
    pub fn new(flag: &StopFlag, waker: Arc<Waker>) -> StopOnDrop {
        StopOnDrop {
            flag: flag.clone(),
            waker,
        }
    }
}

/// Start a loop thread named `name` that runs `body` with its stop flag,
/// pinned to CPU `pin` if given (a refused pin is reported, and the loop
/// runs unpinned); the guard returned stops it when dropped. The thread
/// holds a handle on `waker` while it runs.
pub fn spawn(
    name: String,
    pin: Option<usize>,
    waker: &Arc<Waker>,
    body: impl FnOnce(&StopFlag) + Send + 'static,
) -> std::io::Result<StopOnDrop> {
    let flag = StopFlag::default();
    std::thread::Builder::new().name(name.clone()).spawn({
        let (flag, waker) = (flag.clone(), waker.clone());
        move || {
            if let Some(cpu) = pin
                && let Err(e) = crate::placement::pin_current(cpu)
            {
                tracing::warn!(error = %e, cpu, "{name} runs unpinned");
            }
            body(&flag);
            drop(waker);
        }
    })?;
    Ok(StopOnDrop::new(&flag, waker.clone()))
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.flag.0.store(true, Ordering::Release);
        // A failed wake (the eventfd full) means wakes are pending already.
        let _ = self.waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};
    use std::time::Duration;

    #[test]
    fn dropping_the_guard_raises_the_flag_and_wakes_the_poll() {
        let mut poll = Poll::new().unwrap();
        let waker = Arc::new(Waker::new(poll.registry(), Token(7)).unwrap());
        let flag = StopFlag::default();
        // The loop's own handle keeps the eventfd open (as the loops do).
        let guard = StopOnDrop::new(&flag, waker.clone());
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::ZERO)).unwrap();
        assert!(events.is_empty() && !flag.raised());
        drop(guard);
        assert!(flag.raised());
        // Woken at once, not after the minute.
        poll.poll(&mut events, Some(Duration::from_secs(60)))
            .unwrap();
        assert_eq!(
            events.iter().map(|e| e.token()).collect::<Vec<_>>(),
            [Token(7)]
        );
    }
}

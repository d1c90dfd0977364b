//! The end of sending: every connection drains, then all close together.
//!
//! When sending ends, most connections have nothing in flight and would
//! close at once, while a few hundred still wait for a reply. Closing
//! thousands of connections is a storm of FINs and teardown work on both
//! sides, and the replies still in flight waited behind it: at 6,000 x 10/s
//! the last steady second's p99 was 40-47 ms against 6-15 ms in the seconds
//! before, and the replies of the drain 90-190 ms, figures of the run's
//! teardown charged to its steady state. So a session that has drained
//! waits here until every session of this process has (or its drain
//! deadline passes), and only then sends its close.
//!
//! Sessions that end otherwise (a drop, a ramp-down's stop, Ctrl-C) leave
//! without waiting. Nothing here is touched per message: one count per
//! session, changed when it starts and when it ends.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use tokio::sync::Notify;

/// Sessions of this process not yet drained.
#[derive(Default)]
pub struct Closing {
    open: AtomicUsize,
    drained: Notify,
}

impl Closing {
    /// A session starts; it counts until its [`Entered`] leaves or drops.
    pub fn enter(&self) -> Entered<'_> {
        self.open.fetch_add(1, Ordering::AcqRel);
        Entered {
            closing: self,
            left: AtomicBool::new(false),
        }
    }

    /// Sessions still counted.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Count a session whose owner cannot hold an [`Entered`] (the epoll
    /// loop owns its sessions without a lifetime to borrow this count
    /// for); it must call [`Closing::remove`] exactly once.
    pub fn add(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

    /// Stop counting a session counted with [`Closing::add`].
    pub fn remove(&self) {
        if self.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.drained.notify_waiters();
        }
    }

    /// Woken when the count reaches zero; registered as soon as it is
    /// created (`Notify::notified`), so create it before reading the count.
    pub fn drained(&self) -> tokio::sync::futures::Notified<'_> {
        self.drained.notified()
    }
}

/// One session's place in the count.
pub struct Entered<'a> {
    closing: &'a Closing,
    left: AtomicBool,
}

impl Entered<'_> {
    /// Stop counting this session (once; later calls do nothing).
    pub fn leave(&self) {
        if !self.left.swap(true, Ordering::AcqRel) {
            self.closing.remove();
        }
    }

    /// This session has drained: leave, then wait until no session is
    /// left undrained, or until `deadline`.
    pub async fn leave_and_wait(&self, deadline: Instant) {
        let drained = self.closing.drained();
        let mut drained = std::pin::pin!(drained);
        // Registered before the count is read: the last session's wake
        // cannot fall between the check and the wait.
        drained.as_mut().enable();
        self.leave();
        if self.closing.open() == 0 {
            return;
        }
        let _ = tokio::time::timeout_at(deadline.into(), drained).await;
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn drained_sessions_wait_for_the_last_one_then_all_go() {
        let closing = Arc::new(Closing::default());
        let far = Instant::now() + Duration::from_secs(30);
        let (tx, mut rx) = tokio::sync::mpsc::channel(8);
        // Two sessions drain early and wait; a third still has a reply out.
        let last = closing.enter();
        let mut waiting = Vec::new();
        for i in 0..2 {
            let (c, tx) = (closing.clone(), tx.clone());
            let (ready_tx, ready) = tokio::sync::oneshot::channel();
            waiting.push(tokio::spawn(async move {
                let e = c.enter();
                let _ = ready_tx.send(());
                e.leave_and_wait(far).await;
                let _ = tx.send(i).await;
            }));
            ready.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            rx.try_recv().is_err(),
            "a session closed before the last drained"
        );
        assert_eq!(closing.open(), 1);
        // The last session drops (a drop leaves too): both waiters go.
        drop(last);
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("a drained session kept waiting after the last one left")
                .unwrap();
        }
        for w in waiting {
            w.await.unwrap();
        }
        assert_eq!(closing.open(), 0);
    }

    #[tokio::test]
    async fn a_session_that_never_drains_holds_the_others_only_until_the_deadline() {
        let closing = Closing::default();
        let _stuck = closing.enter();
        let e = closing.enter();
        let t = Instant::now();
        e.leave_and_wait(t + Duration::from_millis(100)).await;
        assert!(t.elapsed() >= Duration::from_millis(100));
        assert_eq!(closing.open(), 1);
        // Leaving twice counts once.
        e.leave();
        assert_eq!(closing.open(), 1);
    }
}

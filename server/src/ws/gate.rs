//! Futures polled only when something may have happened to them.
//!
//! A connection's task wakes for every frame its client sends, and
//! `select!` then polls every branch of its writer: the reader's end, the
//! node's shutdown, the queue, the overflow. Each of those is a `Notify`
//! (or a oneshot) whose pending poll takes a mutex, and the shutdown's is
//! shared by every connection on the node, so all of them take the same
//! few locks on every message. [`gated`] polls such a future once to leave
//! its waker, then again only when a cheap check (one atomic load) says it
//! may be ready, or when the task's waker changed. The queue's own wait is
//! not gated (a gate around a future made anew each loop would hold a
//! second copy of it in every connection's task): it takes no lock
//! instead (`broker::sink`, an `AtomicWaker`).

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// `fut`, re-polled only when `ready()` says it may have finished. `ready`
/// must return true whenever `fut` could be ready (a false `true` only
/// costs a poll). A struct, not an `async fn`: the future is held once,
/// in place, in every connection's task.
pub struct Gated<F, C> {
    fut: F,
    ready: C,
    /// The waker `fut` holds from its last poll.
    left: Option<Waker>,
}

pub fn gated<F: Future + Unpin, C: Fn() -> bool + Unpin>(fut: F, ready: C) -> Gated<F, C> {
    Gated {
        fut,
        ready,
        left: None,
    }
}

impl<F: Future + Unpin, C: Fn() -> bool + Unpin> Future for Gated<F, C> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let same = this.left.as_ref().is_some_and(|w| w.will_wake(cx.waker()));
        if same && !(this.ready)() {
            return Poll::Pending;
        }
        let polled = Pin::new(&mut this.fut).poll(cx);
        if polled.is_pending() && !same {
            this.left = Some(cx.waker().clone());
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;
    use std::pin::pin;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};

    #[tokio::test]
    async fn the_inner_future_is_polled_again_only_when_its_check_allows() {
        let polls = AtomicUsize::new(0);
        let done = AtomicBool::new(false);
        let waker: Mutex<Option<Waker>> = Mutex::new(None);
        let inner = pin!(poll_fn(|cx| {
            polls.fetch_add(1, Relaxed);
            *waker.lock().unwrap() = Some(cx.waker().clone());
            if done.load(Relaxed) {
                Poll::Ready(7)
            } else {
                Poll::Pending
            }
        }));
        let mut g = pin!(gated(inner, || done.load(Relaxed)));
        let mut wakes = 0;
        let got = poll_fn(|cx| {
            // The task wakes for other reasons three times, then `done`.
            let r = g.as_mut().poll(cx);
            wakes += 1;
            if wakes == 4 {
                done.store(true, Relaxed);
            }
            cx.waker().wake_by_ref();
            r
        })
        .await;
        assert_eq!(got, 7);
        assert_eq!(wakes, 5);
        assert_eq!(polls.load(Relaxed), 2, "first poll, then the one allowed");
        assert!(waker.lock().unwrap().is_some());
    }
}

//! One pacer per slot thread: every slot's next wake-up in a 1 ms bucket,
//! all of them woken by one timer.
//!
//! Why: with a tokio timer per message, each send paid a timer-wheel
//! insertion, a cascade between wheel levels and an expiry, and the wheel
//! was the largest tokio cost in loadgen's profile at 75K msg/s (issue 12).
//! Here a slot that waits pushes its task's waker into the bucket of the
//! millisecond it is due, and the thread's one driver wakes a whole bucket
//! at once: tcp_floor's "one epoll loop writes for every connection due",
//! kept inside tokio's tasks. The precision is tokio's own (1 ms, never
//! early).
//!
//! The ring lives in a thread-local: a slot thread's runtime is
//! single-threaded, so its slots and its driver never run anywhere else
//! and need no lock. A task with no pacer on its thread (a slot on a
//! multi-threaded runtime, a test) falls back to a tokio timer.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Buckets in the ring, one per millisecond. A wait longer than this is
/// parked in the farthest bucket and re-armed when that one fires.
const HORIZON: u64 = 1024;
/// Most wakers' room a fired bucket keeps for reuse (38 are due per
/// millisecond per thread at 76K msg/s on two threads).
const SPARE: usize = 64;

/// Wakers due in each millisecond of the next `HORIZON`.
struct Ring {
    epoch: Instant,
    /// The first millisecond (since `epoch`) not fired yet.
    next: u64,
    buckets: Vec<Vec<Waker>>,
    /// Wakers in all buckets.
    waiting: usize,
    /// The driver's waker and the millisecond it sleeps until (`None`:
    /// until a slot registers).
    driver: Option<Waker>,
    driver_at: Option<u64>,
}

impl Ring {
    fn new() -> Ring {
        Ring {
            epoch: Instant::now(),
            next: 0,
            buckets: (0..HORIZON).map(|_| Vec::new()).collect(),
            waiting: 0,
            driver: None,
            driver_at: None,
        }
    }

    /// Milliseconds since `epoch`, rounded up: a bucket never fires early.
    fn ms_ceil(&self, t: Instant) -> u64 {
        let ns = t.saturating_duration_since(self.epoch).as_nanos();
        ns.div_ceil(1_000_000) as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    /// Park `waker` until `due` (or the farthest bucket); returns the
    /// bucket's millisecond.
    fn register(&mut self, due: Instant, waker: &Waker) -> u64 {
        let ms = self.ms_ceil(due).clamp(self.next, self.next + HORIZON - 1);
        self.buckets[(ms % HORIZON) as usize].push(waker.clone());
        self.waiting += 1;
        if self.driver_at.is_none_or(|d| ms < d)
            && let Some(d) = &self.driver
        {
            // The driver sleeps past this bucket (or is idle): re-plan.
            d.wake_by_ref();
        }
        ms
    }

    /// Move the first bucket whose time has come into `out`; if none has,
    /// plan the driver's next wake-up.
    fn fire_or_plan(&mut self, out: &mut Vec<Waker>, driver: &Waker) -> Plan {
        // Bucket `ms` may fire once `epoch + ms` has passed.
        let elapsed = Instant::now().saturating_duration_since(self.epoch);
        let last_due = elapsed.as_millis() as u64;
        while self.next <= last_due {
            if self.waiting == 0 {
                self.next = last_due + 1;
                break;
            }
            let i = (self.next % HORIZON) as usize;
            self.next += 1;
            if !self.buckets[i].is_empty() {
                std::mem::swap(&mut self.buckets[i], out);
                self.waiting -= out.len();
                return Plan::Fired;
            }
        }
        self.driver_at = self.first_busy();
        if self.driver.as_ref().is_none_or(|w| !w.will_wake(driver)) {
            self.driver = Some(driver.clone());
        }
        match self.driver_at {
            Some(ms) => Plan::SleepUntil(self.at(ms)),
            None => Plan::Idle,
        }
    }

    /// The first bucket with a waker, if any.
    fn first_busy(&self) -> Option<u64> {
        if self.waiting == 0 {
            return None;
        }
        (self.next..self.next + HORIZON)
            .find(|ms| !self.buckets[(ms % HORIZON) as usize].is_empty())
    }
}

/// What the driver does next.
enum Plan {
    /// A bucket's wakers are in the driver's scratch vector: wake them.
    Fired,
    /// Sleep until the first busy bucket's time.
    SleepUntil(Instant),
    /// Nothing waits: sleep until a registration wakes the driver.
    Idle,
}

thread_local! {
    static RING: RefCell<Option<Ring>> = const { RefCell::new(None) };
}

/// The pacer of the current thread: install it, then drive it for as long
/// as the thread's slots run (until the returned future is dropped).
pub fn drive() -> Driver {
    RING.with(|r| *r.borrow_mut() = Some(Ring::new()));
    Driver {
        timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
        scratch: Vec::new(),
    }
}

/// Fires the buckets of the thread's ring as their time comes.
pub struct Driver {
    timer: Pin<Box<tokio::time::Sleep>>,
    /// A fired bucket's wakers, swapped out so none is woken under the borrow.
    scratch: Vec<Waker>,
}

impl Future for Driver {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            let plan = RING.with(|r| {
                let mut guard = r.borrow_mut();
                let ring = guard.as_mut()?;
                Some(ring.fire_or_plan(&mut this.scratch, cx.waker()))
            });
            match plan {
                // No ring on this thread: nothing to drive.
                None => return Poll::Pending,
                // A bucket fired: wake its slots (outside the borrow: a
                // woken task only queues), then look again.
                Some(Plan::Fired) => {
                    for w in this.scratch.drain(..) {
                        w.wake();
                    }
                    // The swap hands this vector to the next bucket fired:
                    // a burst's capacity must not spread to every bucket
                    // of the ring (memory per connection is a goal).
                    if this.scratch.capacity() > SPARE {
                        this.scratch = Vec::new();
                    }
                }
                Some(Plan::Idle) => return Poll::Pending,
                Some(Plan::SleepUntil(at)) => {
                    let at = tokio::time::Instant::from_std(at);
                    if this.timer.deadline() != at {
                        this.timer.as_mut().reset(at);
                    }
                    if this.timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}

/// Resolves at `due` (never before), on the thread's pacer when it has one.
pub fn sleep_until(due: Instant) -> Sleep {
    Sleep {
        due,
        armed: None,
        fallback: None,
    }
}

/// A slot's wait on the pacer.
pub struct Sleep {
    due: Instant,
    /// The bucket this wait's waker is in, until it fires.
    armed: Option<u64>,
    /// A tokio timer, where the thread has no pacer.
    fallback: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Some(t) = &mut this.fallback {
            return t.as_mut().poll(cx);
        }
        if Instant::now() >= this.due {
            return Poll::Ready(());
        }
        let parked = RING.with(|r| {
            let mut guard = r.borrow_mut();
            let ring = guard.as_mut()?;
            // Still parked in a bucket that has not fired: nothing to do
            // (a slot's task is woken by its socket too, far more often).
            if this.armed.is_some_and(|ms| ms >= ring.next) {
                return Some(());
            }
            this.armed = Some(ring.register(this.due, cx.waker()));
            Some(())
        });
        if parked.is_none() {
            let mut t = Box::pin(tokio::time::sleep_until(this.due.into()));
            let p = t.as_mut().poll(cx);
            this.fallback = Some(t);
            return p;
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a current-thread runtime with a driver: every wait ends at or
    /// after its due time, within a few ms, in due order.
    #[tokio::test(flavor = "current_thread")]
    async fn waits_end_at_their_due_time_never_before() {
        let driver = tokio::spawn(drive());
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..200u64 {
            // Due times spread over 0-60 ms, and a few beyond the horizon.
            let due = if i % 50 == 0 {
                t0 + Duration::from_millis(HORIZON + 30)
            } else {
                t0 + Duration::from_micros(i * 300)
            };
            tasks.push(tokio::spawn(async move {
                sleep_until(due).await;
                (due, Instant::now())
            }));
        }
        for t in tasks {
            let (due, woke) = tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("a wait never ended: the driver did not fire its bucket")
                .unwrap();
            assert!(woke >= due, "woke {:?} before its due time", due - woke);
            // Generous: a busy CI host delays tasks, never the pacer's order.
            assert!(
                woke - due < Duration::from_millis(500),
                "woke {:?} late",
                woke - due
            );
        }
        driver.abort();
    }

    /// A wait registered while the driver sleeps far ahead re-plans it.
    #[tokio::test(flavor = "current_thread")]
    async fn an_earlier_wait_wakes_a_sleeping_driver() {
        let driver = tokio::spawn(drive());
        let t0 = Instant::now();
        let far = tokio::spawn(sleep_until(t0 + Duration::from_millis(800)));
        tokio::task::yield_now().await;
        let near = t0 + Duration::from_millis(20);
        tokio::time::timeout(Duration::from_secs(10), sleep_until(near))
            .await
            .expect("the near wait never ended");
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(20));
        assert!(took < Duration::from_millis(600), "near wait took {took:?}");
        far.await.unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(800));
        driver.abort();
    }

    /// Without a pacer on the thread (a multi-threaded runtime's worker),
    /// a wait still ends on time, on a tokio timer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_a_pacer_a_tokio_timer_serves() {
        let t0 = Instant::now();
        tokio::spawn(sleep_until(t0 + Duration::from_millis(15)))
            .await
            .unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(15));
    }
}
